package natspacer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// TestFaultServerRestart restarts the nats-server (same port, same store)
// while a paced consumer runs: the connection reconnects by itself, the
// consumption carries on without being restarted, and every message
// published is acked (messages whose ack was lost with the server are
// handled again after AckWait: at least once, none lost).
func TestFaultServerRestart(t *testing.T) {
	const msgs = 3000
	srv := testenv.NATSEmbedded(t) // its own: this test restarts it
	f := newFixture(t, srv.URL(), jetstream.ConsumerConfig{AckWait: 2 * time.Second})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1000, Burst: 10, BaseBurst: 10})
	rec := newRecorder(nil)
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.PollWait(500*time.Millisecond))

	testenv.WaitFor(t, 10*time.Second, "800 messages handled", func() bool { return rec.distinct() >= 800 })
	before := rec.distinct()
	srv.Restart()
	t.Logf("nats-server restarted after %d of %d messages", before, msgs)

	testenv.WaitFor(t, 60*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
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
// another, kills that one mid-run (ctx cancelled while handlers run and
// received messages wait for a handler), and starts a third: nothing is
// lost, and the graceful stop leaves nothing unacknowledged behind it. The
// killed worker's pacer counts as failed only the handlers that ctx
// interrupted; the messages that never started give their permits back.
func TestFaultWorkerStopStart(t *testing.T) {
	const msgs = 2000
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: 2 * time.Second})
	f.publish(t, msgs)
	var interrupted atomic.Int64 // handlers that returned because ctx ended
	rec := newRecorder(func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		select {
		case <-time.After(5 * time.Millisecond):
			return nil
		case <-ctx.Done():
			interrupted.Add(1)
			return ctx.Err()
		}
	})
	start := func(ctx context.Context, opts ...natspacer.ConsumeOption) (*natspacer.Consumption, *pacer.Pacer) {
		p := testenv.NewPacer(t, pacer.Config{Rate: 1000, Burst: 10, BaseBurst: 10}) // a new worker, a new pacer
		opts = append([]natspacer.ConsumeOption{natspacer.Concurrency(32), natspacer.PollWait(300 * time.Millisecond)}, opts...)
		c, err := natspacer.Consume(ctx, f.cons, p, rec, opts...)
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		return c, p
	}

	// Worker 1 stops gracefully.
	c1, _ := start(t.Context())
	testenv.WaitFor(t, 10*time.Second, "500 messages handled", func() bool { return rec.distinct() >= 500 })
	c1.Drain()
	if err := c1.Wait(); err != nil {
		t.Fatalf("worker 1: Wait() = %v", err)
	}
	s1 := c1.Stats()
	if s1.InFlight != 0 || s1.Acked != s1.Received {
		t.Errorf("worker 1 after Stop: InFlight = %d, Acked = %d of Received %d; want 0 and all", s1.InFlight, s1.Acked, s1.Received)
	}
	testenv.WaitFor(t, 5*time.Second, "worker 1's acks processed", func() bool { return f.info(t).NumAckPending == 0 })
	after1 := rec.distinct()

	// Worker 2 is killed mid-run. Its 4 handlers (800/s) are slower than
	// its pace (1,000/s): received messages queue for them, up to 128.
	ctx2, cancel2 := context.WithCancel(t.Context())
	c2, p2 := start(ctx2, natspacer.Concurrency(4), natspacer.MaxInFlight(128))
	testenv.WaitFor(t, 10*time.Second, "1200 messages handled", func() bool { return rec.distinct() >= 1200 })
	cancel2()
	if err := c2.Wait(); err != nil {
		t.Fatalf("worker 2: Wait() = %v", err)
	}
	s2, ps2 := c2.Stats(), p2.Stats()
	after2 := rec.distinct()
	t.Logf("worker 2 killed: %d handlers interrupted, %d messages never started; consumption %+v; pacer %+v",
		interrupted.Load(), s2.Unstarted, s2, ps2)
	if interrupted.Load() == 0 || s2.Unstarted == 0 {
		t.Errorf("worker 2 at the kill: %d handlers interrupted, %d messages unstarted; want both > 0 (the test claims both)",
			interrupted.Load(), s2.Unstarted)
	}
	if want := uint64(interrupted.Load()) + s2.Unstarted; s2.Canceled != want {
		t.Errorf("worker 2: Stats().Canceled = %d, want %d (interrupted + unstarted)", s2.Canceled, want)
	}
	if ps2.Failed != uint64(interrupted.Load()) {
		t.Errorf("worker 2's pacer: Failed = %d, want %d (the interrupted handlers only; %d never started)",
			ps2.Failed, interrupted.Load(), s2.Unstarted)
	}
	if ps2.InFlight != 0 || ps2.Dispatched != ps2.Succeeded+ps2.Failed+ps2.Throttled || ps2.Succeeded != s2.Acked {
		t.Errorf("worker 2's pacer: InFlight = %d, Dispatched = %d, Succeeded = %d, Failed = %d; want 0, Succeeded + Failed, "+
			"Succeeded = Acked (%d)", ps2.InFlight, ps2.Dispatched, ps2.Succeeded, ps2.Failed, s2.Acked)
	}

	// Worker 3 finishes the stream.
	c3, _ := start(t.Context())
	testenv.WaitFor(t, 30*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
	c3.Drain()
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

// TestFaultConsumerDeleted deletes the consumer while no Fetch waits on it
// (the in-flight cap is full: every handler holds a message), then lets
// the handlers finish: the next Fetch finds nobody to answer, Consumer.Info
// says the consumer is gone, and Wait returns that within seconds.
func TestFaultConsumerDeleted(t *testing.T) {
	const cap_ = 4
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: 5 * time.Second})
	f.publish(t, 20)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1000})
	release := make(chan struct{})
	var calls atomic.Int64
	h := natspacer.HandlerFunc(func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	c, err := natspacer.Consume(t.Context(), f.cons, p, h, natspacer.Concurrency(cap_), natspacer.MaxInFlight(cap_),
		natspacer.PollWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		c.Drain()
		_ = c.Wait()
	})
	testenv.WaitFor(t, 5*time.Second, "the in-flight cap full, no Fetch out", func() bool {
		st := c.Stats()
		return st.InFlight == cap_ && st.Permits == 0
	})
	if err := f.js.DeleteConsumer(t.Context(), f.stream, "worker"); err != nil {
		t.Fatalf("DeleteConsumer: %v", err)
	}
	deleted := time.Now()
	close(release)
	released = true
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatalf("the consumption still runs 5s after its consumer was deleted; stats %+v", c.Stats())
	}
	err = c.Wait()
	t.Logf("consumer deleted: Wait() = %v after %v; %d handler calls; stats %+v",
		err, time.Since(deleted).Round(time.Millisecond), calls.Load(), c.Stats())
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("Wait() = %v, want an error wrapping jetstream.ErrConsumerNotFound", err)
	}
	if got := calls.Load(); got != cap_ {
		t.Errorf("%d handler calls, want %d (those running at the deletion)", got, cap_)
	}
}
