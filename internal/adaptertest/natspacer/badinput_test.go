package natspacer_test

import (
	"context"
	"errors"
	"github.com/jobpacer/pacer/internal/testenv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
)

func TestBadInput(t *testing.T) {
	url := natsServer(t).URL()
	f := newFixture(t, url, jetstream.ConsumerConfig{AckWait: 2 * time.Second})
	ackNone, err := f.js.CreateOrUpdateConsumer(t.Context(), f.stream, jetstream.ConsumerConfig{Durable: "acknone", AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	ackAll, err := f.js.CreateOrUpdateConsumer(t.Context(), f.stream, jetstream.ConsumerConfig{Durable: "ackall", AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	limited, err := f.js.CreateOrUpdateConsumer(t.Context(), f.stream, jetstream.ConsumerConfig{Durable: "limited", MaxRequestExpires: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewPacer(t, pacer.Config{Rate: 10})
	h := natspacer.HandlerFunc(func(context.Context, jetstream.Msg) error { return nil })
	mh := natspacer.MsgHandlerFunc(func(context.Context, *nats.Msg) error { return nil })

	t.Run("zero pace is refused by the pacer, naming the field", func(t *testing.T) {
		_, err := pacer.New(pacer.Config{Rate: 0})
		if !errors.Is(err, pacer.ErrInvalid) || !strings.Contains(err.Error(), "rate: 0") {
			t.Errorf("pacer.New(Rate: 0) = %v, want an ErrInvalid naming rate: 0", err)
		}
	})

	consumeCases := []struct {
		name  string
		cons  jetstream.Consumer
		p     *pacer.Pacer
		h     natspacer.Handler
		opts  []natspacer.ConsumeOption
		wants []string // in the message
	}{
		{"nil consumer", nil, p, h, nil, []string{"consumer: nil"}},
		{"nil pacer (no pace)", f.cons, nil, h, nil, []string{"pacer: nil", "pacer.New"}},
		{"nil handler", f.cons, p, nil, nil, []string{"handler: nil"}},
		{"a consumer with AckPolicy none", ackNone, p, h, nil, []string{`"acknone"`, "AckPolicy: AckNone", "want explicit"}},
		{"a consumer with AckPolicy all", ackAll, p, h, nil, []string{`"ackall"`, "AckPolicy: AckAll", "want explicit"}},
		{"Concurrency 0", f.cons, p, h, []natspacer.ConsumeOption{natspacer.Concurrency(0)}, []string{"Concurrency: 0", "≥ 1"}},
		{"MaxBatch -1", f.cons, p, h, []natspacer.ConsumeOption{natspacer.MaxBatch(-1)}, []string{"MaxBatch: -1"}},
		{"ProgressEvery past AckWait", f.cons, p, h, []natspacer.ConsumeOption{natspacer.ProgressEvery(3 * time.Second)}, []string{"ProgressEvery: 3s", "AckWait (2s)"}},
		{"PollWait 1ms", f.cons, p, h, []natspacer.ConsumeOption{natspacer.PollWait(time.Millisecond)}, []string{"PollWait: 1ms", "≥ 10ms"}},
		{"PollWait past the consumer's MaxRequestExpires", limited, p, h, []natspacer.ConsumeOption{natspacer.PollWait(2 * time.Second)},
			[]string{"PollWait: 2s", "MaxRequestExpires (500ms)", `consumer "limited"`}},
		{"a nil clock", f.cons, p, h, []natspacer.ConsumeOption{natspacer.WithClock(nil)}, []string{"WithClock: nil", "pacer.SystemClock()"}},
		// A Subscribe option (Buffer) given to Consume does not compile.
	}
	for _, tc := range consumeCases {
		t.Run("Consume with "+tc.name, func(t *testing.T) {
			c, err := natspacer.Consume(t.Context(), tc.cons, tc.p, tc.h, tc.opts...)
			if err == nil {
				c.Drain()
				_ = c.Wait()
				t.Fatalf("Consume = nil error, want one saying %q", tc.wants)
			}
			checkErr(t, err, tc.wants)
		})
	}

	nc, _ := connect(t, url)
	subscribeCases := []struct {
		name    string
		nc      *nats.Conn
		subject string
		p       *pacer.Pacer
		h       natspacer.MsgHandler
		opts    []natspacer.SubscribeOption
		wants   []string
	}{
		{"nil conn", nil, "x", p, mh, nil, []string{"conn: nil"}},
		{"no subject", nc, "", p, mh, nil, []string{`subject: ""`}},
		{"nil pacer", nc, "x", nil, mh, nil, []string{"pacer: nil"}},
		{"nil handler", nc, "x", p, nil, nil, []string{"handler: nil"}},
		{"Buffer 0", nc, "x", p, mh, []natspacer.SubscribeOption{natspacer.Buffer(0)}, []string{"Buffer: 0"}},
		{"Concurrency -1", nc, "x", p, mh, []natspacer.SubscribeOption{natspacer.Concurrency(-1)}, []string{"Concurrency: -1"}},
		// A Consume option (MaxBatch) given to Subscribe does not compile.
	}
	for _, tc := range subscribeCases {
		t.Run("Subscribe with "+tc.name, func(t *testing.T) {
			s, err := natspacer.Subscribe(t.Context(), tc.nc, tc.subject, "", tc.p, tc.h, tc.opts...)
			if err == nil {
				s.Stop()
				_ = s.Wait()
				t.Fatalf("Subscribe = nil error, want one saying %q", tc.wants)
			}
			checkErr(t, err, tc.wants)
		})
	}
}

func checkErr(t *testing.T, err error, wants []string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "natspacer: ") {
		t.Errorf("error %q does not start with \"natspacer: \"", msg)
	}
	if !errors.Is(err, pacer.ErrInvalid) {
		t.Errorf("error %q does not wrap pacer.ErrInvalid", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
}
