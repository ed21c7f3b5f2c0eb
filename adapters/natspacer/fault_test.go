package natspacer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// TestFaultServerRestart restarts the nats-server (same port, same store)
// while a paced consumer runs: the connection reconnects by itself, the
// consumption carries on without being restarted, and every message
// published is acked (messages whose ack was lost with the server are
// handled again after AckWait: at least once, none lost).
func TestFaultServerRestart(t *testing.T) {
	const msgs = 3000
	srv := testutil.NATSEmbedded(t) // its own: this test restarts it
	f := newFixture(t, srv.URL(), jetstream.ConsumerConfig{AckWait: 2 * time.Second})
	f.publish(t, msgs)
	p := newPacer(t, pacer.Config{Rate: 1000, Burst: 10, BaseBurst: 10})
	rec := newRecorder(nil)
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.PollWait(500*time.Millisecond))

	waitFor(t, 10*time.Second, "800 messages handled", func() bool { return rec.distinct() >= 800 })
	before := rec.distinct()
	srv.Restart()
	t.Logf("nats-server restarted after %d of %d messages", before, msgs)

	waitFor(t, 60*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
	select {
	case <-c.Closed():
		t.Fatalf("the consumption stopped (Wait() = %v); it should have carried on", c.Wait())
	default:
	}
	st := c.Stats()
	t.Logf("published %d; distinct acked %d; handler calls %d (%d again after the restart); reconnects %d; consumption %+v",
		msgs, rec.distinct(), rec.callCount(), rec.callCount()-msgs, f.nc.Stats().Reconnects, st)
	if got := rec.distinct(); got != msgs {
		t.Errorf("distinct messages acked = %d, want %d (published)", got, msgs)
	}
	if f.nc.Stats().Reconnects == 0 {
		t.Errorf("the connection never reconnected: the restart did not happen under the consumer")
	}
}

// TestFaultWorkerStopStart stops the worker mid-run gracefully, starts
// another, kills that one mid-run (ctx cancelled while handlers run), and
// starts a third: nothing is lost, and the graceful stop leaves nothing
// unacknowledged behind it.
func TestFaultWorkerStopStart(t *testing.T) {
	const msgs = 2000
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: 2 * time.Second})
	f.publish(t, msgs)
	rec := newRecorder(func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		select {
		case <-time.After(5 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	start := func(ctx context.Context) *natspacer.Consumption {
		p := newPacer(t, pacer.Config{Rate: 1000, Burst: 10, BaseBurst: 10}) // a new worker, a new pacer
		c, err := natspacer.Consume(ctx, f.cons, p, rec, natspacer.Concurrency(32), natspacer.PollWait(300*time.Millisecond))
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		return c
	}

	// Worker 1 stops gracefully.
	c1 := start(t.Context())
	waitFor(t, 10*time.Second, "500 messages handled", func() bool { return rec.distinct() >= 500 })
	c1.Stop()
	if err := c1.Wait(); err != nil {
		t.Fatalf("worker 1: Wait() = %v", err)
	}
	s1 := c1.Stats()
	if s1.InFlight != 0 || s1.Acked != s1.Received {
		t.Errorf("worker 1 after Stop: InFlight = %d, Acked = %d of Received %d; want 0 and all", s1.InFlight, s1.Acked, s1.Received)
	}
	waitFor(t, 5*time.Second, "worker 1's acks processed", func() bool { return f.info(t).NumAckPending == 0 })
	after1 := rec.distinct()

	// Worker 2 is killed mid-run.
	ctx2, cancel2 := context.WithCancel(t.Context())
	c2 := start(ctx2)
	waitFor(t, 10*time.Second, "1200 messages handled", func() bool { return rec.distinct() >= 1200 })
	cancel2()
	if err := c2.Wait(); err != nil {
		t.Fatalf("worker 2: Wait() = %v", err)
	}
	s2 := c2.Stats()
	after2 := rec.distinct()

	// Worker 3 finishes the stream.
	c3 := start(t.Context())
	waitFor(t, 30*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
	c3.Stop()
	if err := c3.Wait(); err != nil {
		t.Fatalf("worker 3: Wait() = %v", err)
	}
	t.Logf("published %d; acked by worker 1 (stopped) %d, worker 2 (killed) %d, worker 3 %d; distinct acked %d; "+
		"handler calls %d; worker 2 nakked %d at cancel; worker 1 %+v; worker 2 %+v",
		msgs, after1, after2-after1, rec.distinct()-after2, rec.distinct(), rec.callCount(), s2.Canceled, s1, s2)
	if got := rec.distinct(); got != msgs {
		t.Errorf("distinct messages acked = %d, want %d", got, msgs)
	}
	if info := f.info(t); info.NumPending != 0 {
		t.Errorf("consumer NumPending = %d at the end, want 0", info.NumPending)
	}
}
