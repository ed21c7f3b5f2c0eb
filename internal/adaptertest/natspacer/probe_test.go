package natspacer_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
)

func TestProbe(t *testing.T) {
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, 10)
	probe := natspacer.NewProbe(f.cons)
	var _ pacer.Probe = probe

	check := func(what string, wantPending int64, wantInfo uint64) pacer.Backlog {
		t.Helper()
		b, err := probe.Backlog(t.Context())
		if err != nil {
			t.Fatalf("%s: Backlog: %v", what, err)
		}
		if b.Pending != wantPending {
			t.Errorf("%s: Backlog().Pending = %d, want %d", what, b.Pending, wantPending)
		}
		if got := probe.Stats().InfoCalls; got != wantInfo {
			t.Errorf("%s: Stats().InfoCalls = %d, want %d", what, got, wantInfo)
		}
		return b
	}

	check("with nothing observed, from Info", 10, 1)

	batch, err := f.cons.Fetch(3, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		probe.Observe(md)
		if err := msg.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if b := check("after 3 messages observed, from their metadata", 7, 1); b.OldestAge <= 0 {
		t.Errorf("Backlog().OldestAge = %v, want > 0 with messages pending", b.OldestAge)
	}
	check("with nothing observed since the last sample, from Info", 7, 2)
	if st := probe.Stats(); st.Samples != 3 || st.Observed != 3 {
		t.Errorf("Stats() = %+v, want 3 samples and 3 observed", st)
	}
}
