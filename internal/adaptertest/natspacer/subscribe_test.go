package natspacer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// TestSubscribeDropsCounted publishes far faster than the pace into a
// small buffer: every message is either handled or counted as dropped
// (published − handled == dropped, exactly), and the drops are logged.
func TestSubscribeDropsCounted(t *testing.T) {
	const published = 2000
	url := natsServer(t).URL()

	for _, tc := range []struct {
		name  string
		queue string
		subs  int
	}{
		{"one subscription", "", 1},
		{"two subscriptions in a queue group", "workers", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, _ := connect(t, url)
			subject := "core." + testenv.UniqueName(t)
			var logs testenv.SyncBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			var handled atomic.Int64
			h := natspacer.MsgHandlerFunc(func(ctx context.Context, msg *nats.Msg) error {
				handled.Add(1)
				return nil
			})
			var subs []*natspacer.Subscription
			for range tc.subs {
				p := testenv.NewPacer(t, pacer.Config{Rate: 200, Burst: 2, BaseBurst: 2})
				s, err := natspacer.Subscribe(t.Context(), nc, subject, tc.queue, p, h,
					natspacer.Buffer(10), natspacer.Concurrency(1), natspacer.Logger(logger))
				if err != nil {
					t.Fatalf("Subscribe: %v", err)
				}
				t.Cleanup(s.Stop)
				subs = append(subs, s)
			}
			if err := nc.Flush(); err != nil { // the server has the subscriptions
				t.Fatal(err)
			}

			pub, _ := connect(t, url)
			for i := range published {
				if err := pub.Publish(subject, fmt.Appendf(nil, "%d", i)); err != nil {
					t.Fatalf("Publish #%d: %v", i, err)
				}
			}
			if err := pub.Flush(); err != nil {
				t.Fatal(err)
			}
			received := func() (n uint64) {
				for _, s := range subs {
					n += s.Stats().Received
				}
				return n
			}
			testenv.WaitFor(t, 10*time.Second, "every message received", func() bool { return received() == published })
			testenv.WaitFor(t, 5*time.Second, "a message handled", func() bool { return handled.Load() > 0 })
			var st natspacer.SubscribeStats
			for _, s := range subs {
				s.Stop()
				if err := s.Wait(); err != nil {
					t.Fatalf("Wait() = %v, want nil", err)
				}
				x := s.Stats()
				st.Handled += x.Handled
				st.Dropped += x.Dropped
				st.DroppedFull += x.DroppedFull
				st.DroppedAtStop += x.DroppedAtStop
				st.DroppedSlowConsumer += x.DroppedSlowConsumer
			}
			t.Logf("published %d, handled %d, dropped %d (buffer full %d, at stop %d, slow consumer %d)",
				published, handled.Load(), st.Dropped, st.DroppedFull, st.DroppedAtStop, st.DroppedSlowConsumer)
			if got, want := st.Dropped, uint64(published-handled.Load()); got != want {
				t.Errorf("dropped reported = %d, want published − handled = %d", got, want)
			}
			if st.Handled != uint64(handled.Load()) {
				t.Errorf("Stats().Handled = %d, want %d (handler calls)", st.Handled, handled.Load())
			}
			if st.DroppedFull == 0 || handled.Load() == 0 {
				t.Errorf("handled %d, dropped for a full buffer %d: want both > 0 for the test to mean anything", handled.Load(), st.DroppedFull)
			}
			if out := logs.String(); !strings.Contains(out, "dropped") || !strings.Contains(out, subject) {
				t.Errorf("the log does not report the drops on %s:\n%s", subject, out)
			}
		})
	}
}

// TestSubscribePaced: a core subscription whose buffer holds everything
// is handled at the pace, with nothing dropped.
func TestSubscribePaced(t *testing.T) {
	const published = 300
	url := natsServer(t).URL()
	nc, _ := connect(t, url)
	subject := "core." + testenv.UniqueName(t)
	p := testenv.NewPacer(t, pacer.Config{Rate: 500, Burst: 5, BaseBurst: 5})
	var handled atomic.Int64
	s, err := natspacer.Subscribe(t.Context(), nc, subject, "", p, natspacer.MsgHandlerFunc(func(ctx context.Context, msg *nats.Msg) error {
		handled.Add(1)
		return nil
	}), natspacer.Buffer(published))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(); _ = s.Wait() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range published {
		if err := nc.Publish(subject, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "every message handled", func() bool { return handled.Load() == published })
	elapsed := time.Since(start)
	// 300 at 500/s with 5 at once: 590ms at the least.
	if min := time.Duration(float64(published-5) / 500 * float64(time.Second)); elapsed < min {
		t.Errorf("handled %d messages in %v, want ≥ %v at 500/s", published, elapsed, min)
	}
	if st := s.Stats(); st.Dropped != 0 {
		t.Errorf("Stats().Dropped = %d, want 0", st.Dropped)
	}
}

// TestSubscribeDrain: Drain runs what is buffered at the pace instead of
// dropping it; what a short drain cannot run is dropped and counted.
func TestSubscribeDrain(t *testing.T) {
	const published = 40
	url := natsServer(t).URL()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{
		{"long enough", 10 * time.Second},
		{"cut short", 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, _ := connect(t, url)
			subject := "core." + testenv.UniqueName(t)
			p := testenv.NewPacer(t, pacer.Config{Rate: 100})
			var handled atomic.Int64
			s, err := natspacer.Subscribe(context.Background(), nc, subject, "", p, natspacer.MsgHandlerFunc(func(ctx context.Context, msg *nats.Msg) error {
				handled.Add(1)
				return nil
			}), natspacer.Buffer(published), natspacer.Concurrency(2))
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			for i := range published {
				if err := nc.Publish(subject, fmt.Appendf(nil, "%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			testenv.WaitFor(t, 10*time.Second, "every message received", func() bool { return s.Stats().Received == published })
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			if err := s.Drain(ctx); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			st := s.Stats()
			t.Logf("published %d, handled %d, dropped %d", published, handled.Load(), st.Dropped)
			if got := uint64(handled.Load()) + st.Dropped; got != published {
				t.Errorf("handled %d + dropped %d = %d, want %d", handled.Load(), st.Dropped, got, published)
			}
			if tc.timeout > time.Second && st.Dropped != 0 {
				t.Errorf("a drain with time to spare dropped %d", st.Dropped)
			}
			if tc.timeout < time.Second && st.Dropped == 0 {
				t.Errorf("a 50ms drain at 100/s ran all %d: the test means nothing", published)
			}
		})
	}
}
