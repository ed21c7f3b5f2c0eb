package sources

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/testenv"
)

func TestResumeFloorAndDone(t *testing.T) {
	var r resume
	for _, seq := range []uint64{2, 1, 5, 3} {
		r.settled(seq)
	}
	// 1, 2, 3 are contiguous from the floor: the floor moves to 3; 5 is
	// remembered above it, 4 (not settled, or another subject's) is not.
	if r.floor != 3 || len(r.done) != 1 || r.done[0] != 5 {
		t.Fatalf("floor %d, done %v: want floor 3, done [5]", r.floor, r.done)
	}
	for seq, want := range map[uint64]bool{1: true, 3: true, 4: false, 5: true, 6: false} {
		if got := r.seen(seq); got != want {
			t.Errorf("seen(%d) = %v, want %v", seq, got, want)
		}
	}
	// An ack floor read from the server for another consumer is ignored;
	// the consumer's own raises the floor and drops what it covers.
	created := time.Unix(100, 0)
	r.cons = created
	r.observe(&jetstream.ConsumerInfo{Created: created.Add(time.Second), AckFloor: jetstream.SequenceInfo{Stream: 9}})
	if r.floor != 3 {
		t.Errorf("floor %d after another consumer's info, want 3", r.floor)
	}
	r.settled(7)
	r.observe(&jetstream.ConsumerInfo{Created: created, AckFloor: jetstream.SequenceInfo{Stream: 5}})
	if r.floor != 5 || len(r.done) != 1 || r.done[0] != 7 {
		t.Errorf("floor %d, done %v after the ack floor 5: want floor 5, done [7]", r.floor, r.done)
	}
	r.settled(6) // fills the gap: the floor moves over 6 and 7
	if r.floor != 7 || len(r.done) != 0 {
		t.Errorf("floor %d, done %v: want floor 7, done []", r.floor, r.done)
	}
	// Another stream (deleted and made again) forgets everything.
	r.streamIs(time.Unix(200, 0))
	if r.floor != 0 || len(r.done) != 0 || r.seen(1) {
		t.Errorf("after a new stream: floor %d, done %v, want nothing remembered", r.floor, r.done)
	}
}

// The remembered set is bounded: beyond maxDone the lowest sequences are
// forgotten (they may run again), the newest maxDone stay, and the floor
// does not move over the gaps between them (jobs not settled, which must
// run).
func TestResumeBounded(t *testing.T) {
	var r resume
	for i := range uint64(maxDone + 10) {
		r.settled(2 + 2*i) // every other sequence: nothing contiguous
	}
	if len(r.done) != maxDone {
		t.Fatalf("%d remembered, want %d", len(r.done), maxDone)
	}
	if r.floor != 0 {
		t.Errorf("floor %d, want 0: sequences 1, 3, 5 … were never settled", r.floor)
	}
	if r.seen(2) || r.seen(3) || !r.seen(2+2*(maxDone+9)) || r.seen(2*(maxDone+10)+1) {
		t.Error("seen: want the lowest forgotten, the newest remembered, and none never settled")
	}
}

// resume.consumer recreates a consumer after the floor on a limits
// stream, from the first message on a work queue (the server refuses a
// start there), and takes an existing consumer as it is.
func TestResumeConsumerStart(t *testing.T) {
	ns := testenv.NATSEmbedded(t)
	js := testenv.JetStream(t, ns.URL())
	ctx := context.Background()
	for _, tc := range []struct {
		retention jetstream.RetentionPolicy
		policy    jetstream.DeliverPolicy
		start     uint64
	}{
		{jetstream.LimitsPolicy, jetstream.DeliverByStartSequencePolicy, 51},
		{jetstream.InterestPolicy, jetstream.DeliverByStartSequencePolicy, 51},
		{jetstream.WorkQueuePolicy, jetstream.DeliverAllPolicy, 0},
	} {
		name := "RESUME" + strings.ToUpper(tc.retention.String())
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name) + ".>"}, Retention: tc.retention})
		if err != nil {
			t.Fatal(err)
		}
		var r resume
		r.streamIs(st.CachedInfo().Created)
		for seq := uint64(1); seq <= 50; seq++ {
			r.settled(seq)
		}
		cfg := jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 7 * time.Second, MaxDeliver: 3}
		cons, err := r.consumer(ctx, js, st, cfg)
		if err != nil {
			t.Fatalf("%v: %v", tc.retention, err)
		}
		got := cons.CachedInfo().Config
		if got.DeliverPolicy != tc.policy || got.OptStartSeq != tc.start || got.AckWait != cfg.AckWait || got.MaxDeliver != cfg.MaxDeliver {
			t.Errorf("%v: consumer %+v, want deliver policy %v from %d, the rest as asked", tc.retention, got, tc.policy, tc.start)
		}
		if start, _ := r.recreated(); start != tc.start {
			t.Errorf("%v: recreated() = %d, want %d", tc.retention, start, tc.start)
		}
		// A second Connect finds it: it keeps its start, and the state.
		var again resume
		again.streamIs(st.CachedInfo().Created)
		if _, err := again.consumer(ctx, js, st, cfg); err != nil {
			t.Errorf("%v: taking the existing consumer: %v", tc.retention, err)
		}
		if _, err := r.consumer(ctx, js, st, cfg); err != nil || !r.seen(50) {
			t.Errorf("%v: the same resume taking its consumer again: %v, seen(50) = %v, want no error, true", tc.retention, err, r.seen(50))
		}
	}
}

// A stream deleted and made again starts its sequences at 1: a Connect to
// the new stream keeps nothing of the old one, not even through the old
// consumer's cached ack floor (the probe reads the consumer's Info when
// the stream is idle, so that cache is recent), and the consumer it makes
// starts at the new stream's first job.
func TestResumeForgetsARecreatedStream(t *testing.T) {
	t.Parallel()
	ns := testenv.NATSEmbedded(t)
	js := testenv.JetStream(t, ns.URL())
	b := brokers.New(config.Redis{}, config.NATS{URL: ns.URL()}, nil)
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, retention := range []string{"workqueue", "limits"} {
		t.Run(retention, func(t *testing.T) {
			name := strings.ToUpper(testenv.UniqueName(t))
			s := &jetStreamSource{cfg: JetStreamConfig{Stream: name, Subjects: []string{strings.ToLower(name) + ".>"},
				Durable: "pacer-test", AckWait: 30 * time.Second, Retention: retention, MaxAge: time.Hour}}
			s.UseBrokers(b)
			if _, err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			for range 50 {
				if err := s.Produce(ctx, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			// Settle the 50 as Run does, ack them, and read the ack
			// floor as the probe does.
			msgs, err := s.cons.FetchNoWait(50)
			if err != nil {
				t.Fatal(err)
			}
			for m := range msgs.Messages() {
				md, _ := m.Metadata()
				s.resume.settled(md.Sequence.Stream)
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if info, err := s.cons.Info(ctx); err != nil || info.AckFloor.Stream != 50 {
				t.Fatalf("ack floor %v (err %v), want 50", info.AckFloor.Stream, err)
			}

			if err := js.DeleteStream(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Connect(ctx); err != nil { // makes the stream again
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= 50; seq++ {
				if s.resume.seen(seq) {
					t.Fatalf("seen(%d) = true on the new stream: its job would be acked without running", seq)
				}
			}
			if got := s.cons.CachedInfo().Config; got.OptStartSeq > 1 {
				t.Errorf("consumer on the new stream starts at %d (policy %v), want its first job", got.OptStartSeq, got.DeliverPolicy)
			}
		})
	}
}
