package natspacer_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// consume starts a consumption and stops it, waiting, at cleanup.
func consume(t testing.TB, ctx context.Context, cons jetstream.Consumer, p *pacer.Pacer, h natspacer.Handler, opts ...natspacer.ConsumeOption) *natspacer.Consumption {
	t.Helper()
	c, err := natspacer.Consume(ctx, cons, p, h, opts...)
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	t.Cleanup(func() {
		c.Drain()
		if err := c.Wait(); err != nil {
			t.Errorf("Consumption.Wait() = %v, want nil", err)
		}
	})
	return c
}

func TestConsumeRate(t *testing.T) {
	const msgs, pace, window = 10_000, 500, 3 * time.Second
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, msgs)
	const burst = 1
	p := testenv.NewPacer(t, pacer.Config{Rate: pace})
	rec := newRecorder(nil)

	start := time.Now()
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(64))
	// The window is over once a handler starts after it.
	testenv.WaitFor(t, window+10*time.Second, "a handler start after the window", func() bool {
		return rec.callCount() > rec.startsBefore(start.Add(window))
	})
	dispatched := p.Stats().Dispatched
	c.Drain()
	if err := c.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}

	got := rec.startsBefore(start.Add(window))
	want := pace*window.Seconds() + burst // the ceiling starts full
	t.Logf("%d messages at %d/s: %d handled in the first %v (%.2f%% of %v), %d permits given; stats %+v",
		msgs, pace, got, window, 100*float64(got)/want, want, dispatched, c.Stats())
	if math.Abs(float64(got)-want) > 0.02*want {
		t.Errorf("handled %d messages in %v at %d/s, want %v ± 2%%", got, window, pace, want)
	}
	for seq, d := range rec.delivered {
		if len(d) != 1 {
			t.Fatalf("message %d handled %d times, want once", seq, len(d))
		}
	}
}

// TestNoRedeliveryFromPacing paces 60 messages at 5/s on a consumer whose
// AckWait is 2s: the run lasts 12s, six AckWaits, yet no message is ever
// delivered twice, because none is fetched before it may start. The same
// messages through a plain Consume (default options) whose handler waits
// on a rate.Limiter are redelivered: its prefetch buffer holds them past
// AckWait (nats.go issue 1929).
func TestNoRedeliveryFromPacing(t *testing.T) {
	const msgs, pace, ackWait = 60, 5, 2 * time.Second
	url := natsServer(t).URL()

	t.Run("paced Consume delivers every message once", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, url, jetstream.ConsumerConfig{AckWait: ackWait})
		f.publish(t, msgs)
		p := testenv.NewPacer(t, pacer.Config{Rate: pace})
		rec := newRecorder(nil)
		c := consume(t, t.Context(), f.cons, p, rec)
		testenv.WaitFor(t, 30*time.Second, "every message handled", func() bool { return rec.distinct() == msgs })

		for seq, d := range rec.delivered {
			if len(d) != 1 || d[0] != 1 {
				t.Errorf("message %d: NumDelivered of each call = %v, want [1]", seq, d)
			}
		}
		testenv.WaitFor(t, 5*time.Second, "every ack processed", func() bool { return f.info(t).NumAckPending == 0 })
		info := f.info(t)
		if info.NumRedelivered != 0 || info.NumPending != 0 {
			t.Errorf("consumer info: NumRedelivered = %d, NumPending = %d; want 0, 0", info.NumRedelivered, info.NumPending)
		}
		t.Logf("paced: %d messages, %d handler calls, 0 redeliveries; stats %+v", msgs, rec.callCount(), c.Stats())
	})

	t.Run("plain Consume with a rate.Limiter redelivers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, url, jetstream.ConsumerConfig{AckWait: ackWait})
		f.publish(t, msgs)
		lim := rate.NewLimiter(pace, 1)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var calls atomic.Int64
		cc, err := f.cons.Consume(func(msg jetstream.Msg) {
			if lim.Wait(ctx) != nil {
				return
			}
			calls.Add(1)
			_ = msg.Ack()
		})
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		defer func() { cancel(); cc.Stop(); <-cc.Closed() }()

		// Messages 11 to 60 were prefetched at once and wait in the buffer
		// behind the limiter; their AckWait ends at 2s and the server
		// sends them again.
		var info *jetstream.ConsumerInfo
		testenv.WaitFor(t, 3*ackWait, "the server to redeliver prefetched messages", func() bool {
			info = f.info(t)
			return info.NumRedelivered > 0
		})
		t.Logf("plain Consume + rate.Limiter: after %d handler calls, NumRedelivered = %d, NumAckPending = %d",
			calls.Load(), info.NumRedelivered, info.NumAckPending)
	})
}

// TestBacklog bursts 20,000 messages on a consumer paced at base 100/s
// under a ceiling of 2,000/s: the probe reads the backlog from message
// metadata, the factor rises until the pace meets the ceiling, the burst
// drains far faster than the base, the ceiling holds, and once the stream
// is empty the factor returns toward 1.
func TestBacklog(t *testing.T) {
	const msgs, base, ceiling, burst = 20_000, 100, 2_000, 1
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, msgs)
	probe := natspacer.NewProbe(f.cons)
	// MaxFactor 40 lets base × factor reach past the ceiling, so the
	// ceiling is what binds.
	permits := &stampLimiter{}
	p := testenv.NewPacer(t, pacer.Config{Rate: ceiling, Burst: burst, BaseBurst: burst, Base: base, MaxFactor: 40,
		Period: 100 * time.Millisecond, Probe: probe, Limiter: permits})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = p.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	var maxFactor atomic.Uint64 // float64 bits
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s := p.Stats()
				if s.Factor > math.Float64frombits(maxFactor.Load()) {
					maxFactor.Store(math.Float64bits(s.Factor))
				}
				if s.Pace > s.Ceiling {
					t.Errorf("Stats().Pace = %v > Ceiling %v", s.Pace, s.Ceiling)
				}
			}
		}
	}()
	defer func() { cancel(); <-sampleDone }()

	rec := newRecorder(nil)
	start := time.Now()
	c := consume(t, ctx, f.cons, p, rec, natspacer.WithProbe(probe), natspacer.Concurrency(64))
	testenv.WaitFor(t, 60*time.Second, "the burst to drain", func() bool { return rec.distinct() == msgs })
	drain := time.Since(start)
	ps := probe.Stats()

	mf := math.Float64frombits(maxFactor.Load())
	drainRate := float64(msgs) / drain.Seconds()
	peak, peakPermits := rec.maxInWindow(time.Second), permits.maxInWindow(time.Second)
	t.Logf("burst of %d: drained in %v (%.0f/s; base %d/s, ceiling %d/s); max factor %.2f; "+
		"busiest 1s window: %d permits, %d handler starts; probe %+v",
		msgs, drain.Round(time.Millisecond), drainRate, base, ceiling, mf, peakPermits, peak, ps)
	if mf < 10 {
		t.Errorf("max factor = %.2f, want ≥ 10 (a deep backlog raises it)", mf)
	}
	if drainRate < 5*base {
		t.Errorf("drained at %.0f/s, want > 5 × base (%d/s)", drainRate, 5*base)
	}
	// The pacer admits at most Burst + ceiling × w in any window w longer
	// than its timers' lateness: a timer that wakes late lets the waiter
	// take what fell due meanwhile, at once (so the rate is kept whatever
	// the timers). The longest gap between permits bounds that lateness;
	// on an idle machine it is a few ms, under heavy load far more.
	// Handler starts lag their permits by a fetch round trip, which varies
	// and can bunch them a little more.
	gap := permits.longestGap()
	limit := ceiling + burst + int(ceiling*gap.Seconds()) + ceiling/200
	t.Logf("longest gap between permits %v: a 1s window may hold up to %d", gap.Round(time.Millisecond), limit)
	if peakPermits > limit {
		t.Errorf("busiest 1s window held %d permits, want ≤ %d (ceiling %d/s, burst %d, timer lateness ≤ %v)", peakPermits, limit, ceiling, burst, gap)
	}
	if limit := limit + ceiling/20; peak > limit {
		t.Errorf("busiest 1s window held %d handler starts, want ≤ %d (the permits' bound + 5%% for fetch lag)", peak, limit)
	}
	if ps.InfoCalls*10 > ps.Samples {
		t.Errorf("probe made %d Info calls in %d samples while messages flowed, want ≤ 1 in 10 (metadata is free)", ps.InfoCalls, ps.Samples)
	}
	testenv.WaitFor(t, 5*time.Second, "the factor to return toward 1", func() bool { return p.Stats().Factor <= 1.5 })
	t.Logf("factor after drain: %.2f; consumption %+v", p.Stats().Factor, c.Stats())
}

// TestPushback: the downstream answers "throttled, retry after 500ms" to
// the calls that start in its first 25ms, as one at its limit does. A
// retry-after that short does not pause the consumer: the pace drops and
// the others go on; each throttled message is nakked with its delay and
// comes back no earlier; in the end every message is acked exactly once.
func TestPushback(t *testing.T) {
	const msgs, retry = 50, 500 * time.Millisecond
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 100})
	var first atomic.Int64 // unix nanos of the first call
	var throttled atomic.Int64
	var mu sync.Mutex
	throttledAt := map[uint64]time.Time{}   // stream seq → when it was throttled
	backAfter := map[uint64]time.Duration{} // stream seq → how long until it came back
	rec := newRecorder(func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		now := time.Now()
		first.CompareAndSwap(0, now.UnixNano())
		mu.Lock()
		if at, ok := throttledAt[md.Sequence.Stream]; ok {
			backAfter[md.Sequence.Stream] = now.Sub(at)
		}
		mu.Unlock()
		time.Sleep(40 * time.Millisecond)
		if now.UnixNano()-first.Load() < int64(25*time.Millisecond) {
			throttled.Add(1)
			mu.Lock()
			throttledAt[md.Sequence.Stream] = time.Now()
			mu.Unlock()
			return pacer.Throttle(retry, nil)
		}
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(8))
	testenv.WaitFor(t, 20*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
	testenv.WaitFor(t, 5*time.Second, "every ack processed", func() bool { return f.info(t).NumAckPending == 0 })

	s := p.Stats()
	t.Logf("throttled answers %d; pacer pauses %d, cuts %d, throttled %d, failed %d; longest gap between starts %v; consumption %+v",
		throttled.Load(), s.Pauses, s.Cuts, s.Throttled, s.Failed, rec.longestGap().Round(time.Millisecond), c.Stats())
	if throttled.Load() == 0 {
		t.Fatal("no call was throttled: the test proves nothing")
	}
	if s.Pauses != 0 || s.Cuts != 1 || s.Failed != 0 {
		t.Errorf("pacer Stats: Pauses = %d, Cuts = %d, Failed = %d; want 0, 1, 0: a short retry-after lowers the pace once and pauses nothing", s.Pauses, s.Cuts, s.Failed)
	}
	if got, want := s.Throttled, uint64(throttled.Load()); got != want {
		t.Errorf("pacer Stats().Throttled = %d, want %d", got, want)
	}
	mu.Lock()
	for seq := range throttledAt {
		if d, ok := backAfter[seq]; !ok || d < retry-10*time.Millisecond {
			t.Errorf("message %d came back %v after it was throttled (seen again: %v), want ≥ its retry-after %v", seq, d, ok, retry)
		}
	}
	mu.Unlock()
	for seq := uint64(1); seq <= msgs; seq++ {
		if n := rec.succeeded[seq]; n != 1 {
			t.Errorf("message %d acked %d times, want exactly once", seq, n)
		}
	}
	if got := c.Stats().Acked; got != msgs {
		t.Errorf("Stats().Acked = %d, want %d", got, msgs)
	}
	if info := f.info(t); info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer info: NumPending = %d, NumAckPending = %d; want 0, 0", info.NumPending, info.NumAckPending)
	}
}

// TestInProgress: work that lasts longer than AckWait gets InProgress and
// is never redelivered.
func TestInProgress(t *testing.T) {
	t.Parallel()
	const msgs, ackWait, work = 3, time.Second, 2500 * time.Millisecond
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: ackWait})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 100})
	rec := newRecorder(func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		time.Sleep(work)
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(msgs))
	testenv.WaitFor(t, 10*time.Second, "every message handled", func() bool { return rec.distinct() == msgs })
	st := c.Stats()
	if st.Progress < 2*msgs {
		t.Errorf("Stats().Progress = %d, want ≥ %d (2 per message of %v with AckWait %v)", st.Progress, 2*msgs, work, ackWait)
	}
	for seq, d := range rec.delivered {
		if len(d) != 1 {
			t.Errorf("message %d: handled %d times (NumDelivered %v), want once", seq, len(d), d)
		}
	}
	if info := f.info(t); info.NumRedelivered != 0 {
		t.Errorf("consumer NumRedelivered = %d, want 0", info.NumRedelivered)
	}
}

// TestProgressOnTheGivenClock: the consumption reads time from the clock
// WithClock gives it, so InProgress follows that clock and not the wall
// clock: a handler holds its message while the fake clock alone moves past
// ProgressEvery (half the AckWait of 30s), and InProgress is sent.
func TestProgressOnTheGivenClock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: 30 * time.Second})
	f.publish(t, 1)
	p := testenv.NewPacer(t, pacer.Config{Rate: 100})
	clock := testutil.NewClock(time.Now())
	started, release := make(chan struct{}), make(chan struct{})
	h := natspacer.HandlerFunc(func(ctx context.Context, msg jetstream.Msg) error {
		close(started)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, h, natspacer.WithClock(clock))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not start within 10s")
	}
	if got := c.Stats().Progress; got != 0 {
		t.Fatalf("Stats().Progress = %d before the fake clock moved, want 0", got)
	}
	var moved time.Duration
	testenv.WaitFor(t, 10*time.Second, "InProgress after the fake clock passed ProgressEvery", func() bool {
		clock.Advance(time.Second)
		moved += time.Second
		return c.Stats().Progress >= 1
	})
	close(release)
	testenv.WaitFor(t, 5*time.Second, "the message acked", func() bool { return c.Stats().Acked == 1 })
	t.Logf("InProgress sent after the fake clock moved %v (ProgressEvery 15s); stats %+v", moved, c.Stats())
	if moved < 15*time.Second {
		t.Errorf("InProgress sent after the fake clock moved %v, want ≥ 15s (ProgressEvery)", moved)
	}
}

// TestBatching: at an unlimited pace, fetches carry many messages each.
func TestBatching(t *testing.T) {
	const msgs = 5000
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1e9})
	rec := newRecorder(nil)
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(256))
	testenv.WaitFor(t, 30*time.Second, "every message handled", func() bool { return rec.distinct() == msgs })
	st := c.Stats()
	t.Logf("%d messages in %d fetches; stats %+v", msgs, st.Fetches, st)
	if st.Fetches*10 > msgs {
		t.Errorf("%d fetches for %d messages, want ≤ 1 per 10 messages", st.Fetches, msgs)
	}
}

// TestStopIdle: on an idle stream one permit at a time waits in a long
// poll; each poll that ends empty, and Stop, give it back (Permit.Cancel).
// The pacer counts nothing dispatched and nothing failed, and nothing is
// left in flight.
func TestStopIdle(t *testing.T) {
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	p := testenv.NewPacer(t, pacer.Config{Rate: 10, MaxInFlight: 4})
	c, err := natspacer.Consume(t.Context(), f.cons, p, newRecorder(nil), natspacer.PollWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "two long polls", func() bool { return c.Stats().Fetches > 1 })
	c.Drain()
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("Stop on an idle stream did not end within 5s")
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("Wait() = %v, want nil", err)
	}
	st, ps := c.Stats(), p.Stats()
	// Each poll's permit is given back; one more if Stop caught a permit
	// between its gathering and its Fetch.
	if st.Returned < st.Fetches || st.Returned > st.Fetches+1 || ps.InFlight != 0 || ps.Dispatched != 0 || ps.Failed != 0 {
		t.Errorf("after Stop on an idle stream: Returned = %d (Fetches %d), pacer InFlight = %d, Dispatched = %d, Failed = %d; "+
			"want Returned = Fetches (+1) and 0, 0, 0", st.Returned, st.Fetches, ps.InFlight, ps.Dispatched, ps.Failed)
	}
}

// TestStopNaksWhatWaits: Stop, unlike Drain, does not handle what the
// consumption holds: the messages received that wait for a handler are
// nakked for immediate redelivery, their permits given back, and the
// running handler finishes with its outcome sent.
func TestStopNaksWhatWaits(t *testing.T) {
	t.Parallel()
	const msgs = 20
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: 30 * time.Second})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1e9})
	started, release := make(chan struct{}, msgs), make(chan struct{})
	h := natspacer.HandlerFunc(func(ctx context.Context, msg jetstream.Msg) error {
		started <- struct{}{}
		<-release
		return nil
	})
	c, err := natspacer.Consume(t.Context(), f.cons, p, h, natspacer.Concurrency(1), natspacer.PollWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	var before natspacer.ConsumeStats
	testenv.WaitFor(t, 5*time.Second, "messages waiting for the busy handler", func() bool {
		before = c.Stats()
		return before.Waiting > 0
	})
	c.Stop()
	close(release)
	if err := c.Wait(); err != nil {
		t.Fatalf("Wait() = %v, want nil", err)
	}
	st, ps := c.Stats(), p.Stats()
	t.Logf("before Stop %+v; after %+v; pacer %+v", before, st, ps)
	if st.Acked != 1 || st.Unstarted != st.Received-1 || st.Canceled != st.Unstarted || st.Unstarted < uint64(before.Waiting) {
		t.Errorf("after Stop: Acked %d, Unstarted %d, Canceled %d of Received %d (%d waited at Stop); "+
			"want 1 acked (the running handler) and every other received message nakked unstarted",
			st.Acked, st.Unstarted, st.Canceled, st.Received, before.Waiting)
	}
	if ps.Dispatched != 1 || ps.InFlight != 0 {
		t.Errorf("pacer: Dispatched %d, InFlight %d; want 1 and 0 (the unstarted messages' permits given back)", ps.Dispatched, ps.InFlight)
	}
	// Nakked, they are delivered again at once: the next consumer gets
	// every message but the one acked.
	rec := newRecorder(nil)
	consume(t, t.Context(), f.cons, testenv.NewPacer(t, pacer.Config{Rate: 1e9}), rec)
	testenv.WaitFor(t, 10*time.Second, "the other messages handled by the next consumer", func() bool { return rec.distinct() == msgs-1 })
	for seq, d := range rec.delivered {
		if want := uint64(1); seq <= st.Received && d[0] == want {
			t.Errorf("message %d, nakked at Stop, came with NumDelivered %d, want > 1", seq, d[0])
		}
	}
}

// TestTerminate: a handler error wrapping ErrTerminate sends Term: the
// message is not redelivered, and the others are acked.
func TestTerminate(t *testing.T) {
	const msgs = 20
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: time.Second})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1000})
	rec := newRecorder(func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		if md.Sequence.Stream%5 == 0 {
			return fmt.Errorf("http 400: %w", natspacer.ErrTerminate)
		}
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, rec)
	testenv.WaitFor(t, 10*time.Second, "every message settled", func() bool {
		st := c.Stats()
		return st.Acked+st.Terminated == msgs && f.info(t).NumAckPending == 0
	})
	// A message not terminated would still count in the consumer's
	// state: ack pending (no answer: back after AckWait), pending or
	// redelivered (a nak). Term removes it at once, so the server's own
	// count settles it without waiting out AckWait.
	if info := f.info(t); info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 ||
		info.Delivered.Consumer != msgs || info.AckFloor.Consumer != msgs {
		t.Errorf("consumer info: NumAckPending %d, NumPending %d, NumRedelivered %d, Delivered %d, AckFloor %d; "+
			"want 0, 0, 0, %d, %d (each message delivered once and settled)", info.NumAckPending, info.NumPending,
			info.NumRedelivered, info.Delivered.Consumer, info.AckFloor.Consumer, msgs, msgs)
	}
	if got := rec.callCount(); got != msgs {
		t.Errorf("handler called %d times for %d messages: a terminated message came back", got, msgs)
	}
	if st := c.Stats(); st.Terminated != msgs/5 || st.Acked != msgs-msgs/5 {
		t.Errorf("Stats: terminated %d, acked %d; want %d, %d", st.Terminated, st.Acked, msgs/5, msgs-msgs/5)
	}
	if s := p.Stats(); s.Failed != msgs/5 {
		t.Errorf("pacer Stats().Failed = %d, want %d", s.Failed, msgs/5)
	}
}

// TestRequestLimits: the consumer's MaxRequestBatch and MaxRequestExpires
// shape the fetches, so the server refuses none of them; limits lowered
// under a running consumption stop it with the server's refusal.
func TestRequestLimits(t *testing.T) {
	url := natsServer(t).URL()

	t.Run("MaxRequestBatch 10 and MaxRequestExpires 300ms", func(t *testing.T) {
		const msgs = 100
		f := newFixture(t, url, jetstream.ConsumerConfig{MaxRequestBatch: 10, MaxRequestExpires: 300 * time.Millisecond})
		f.publish(t, msgs)
		p := testenv.NewPacer(t, pacer.Config{Rate: 1e9})
		rec := newRecorder(nil)
		// Concurrency 64: the in-flight cap alone would ask for 64 at once.
		// The default PollWait (1s) is lowered to MaxRequestExpires.
		c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(64))
		testenv.WaitFor(t, 10*time.Second, "every message handled", func() bool { return rec.distinct() == msgs })
		idle := c.Stats().Fetches
		testenv.WaitFor(t, 5*time.Second, "two long polls on the idle stream", func() bool { return c.Stats().Fetches >= idle+2 })
		st := c.Stats()
		t.Logf("%d messages with MaxRequestBatch 10: %d fetches, %d fetch errors; stats %+v", msgs, st.Fetches, st.FetchErrors, st)
		if st.FetchErrors != 0 {
			t.Errorf("Stats().FetchErrors = %d, want 0: the server refused pull requests", st.FetchErrors)
		}
		if st.Fetches < msgs/10 {
			t.Errorf("Stats().Fetches = %d for %d messages, want ≥ %d (10 at most per Fetch)", st.Fetches, msgs, msgs/10)
		}
	})

	t.Run("limits lowered under a running consumption stop it", func(t *testing.T) {
		f := newFixture(t, url, jetstream.ConsumerConfig{})
		p := testenv.NewPacer(t, pacer.Config{Rate: 100})
		c, err := natspacer.Consume(t.Context(), f.cons, p, newRecorder(nil), natspacer.PollWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Drain(); _ = c.Wait() })
		testenv.WaitFor(t, 5*time.Second, "a long poll", func() bool { return c.Stats().Fetches > 0 })
		if _, err := f.js.CreateOrUpdateConsumer(t.Context(), f.stream, jetstream.ConsumerConfig{
			Durable: "worker", MaxRequestExpires: 50 * time.Millisecond}); err != nil {
			t.Fatalf("lowering MaxRequestExpires: %v", err)
		}
		select {
		case <-c.Closed():
		case <-time.After(5 * time.Second):
			t.Fatalf("the consumption still runs 5s after MaxRequestExpires fell below PollWait; stats %+v", c.Stats())
		}
		err = c.Wait()
		t.Logf("Wait() = %v", err)
		if err == nil || !strings.Contains(err.Error(), "Exceeded MaxRequestExpires") {
			t.Errorf("Wait() = %v, want the server's \"Exceeded MaxRequestExpires\"", err)
		}
	})
}

// TestShortFetchKeepsPending: a Fetch that comes back short (another
// worker holds 8 of the consumer's MaxAckPending 10) still says, in its
// last message, that 90 messages are pending; the consumption keeps
// gathering as many permits as its cap (8) and its window allow for the
// next Fetch, instead of taking the stream for dry and asking for 1.
func TestShortFetchKeepsPending(t *testing.T) {
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{MaxAckPending: 10, MaxWaiting: 1})
	f.publish(t, 100)
	held, err := f.cons.Fetch(8, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range held.Messages() {
		n++
	}
	if n != 8 || held.Error() != nil {
		t.Fatalf("the other worker's Fetch(8) got %d messages, error %v", n, held.Error())
	}
	p := testenv.NewPacer(t, pacer.Config{Rate: 1e9})
	release := make(chan struct{})
	h := natspacer.HandlerFunc(func(ctx context.Context, msg jetstream.Msg) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	// MaxWaiting 1: one Fetch at a time. The first asks for 1 (the
	// consumer's cached NumPending is 0), the second for as many as the
	// window lets run ahead (at most 9) and gets 1.
	c := consume(t, t.Context(), f.cons, p, h, natspacer.Concurrency(10), natspacer.PollWait(time.Second))
	defer close(release)
	testenv.WaitFor(t, 5*time.Second, "a Fetch that came back short", func() bool { return c.Stats().Returned >= 1 })
	// The permits for the next Fetch are gathered as soon as the short
	// one is read; that Fetch then waits PollWait on the server.
	var st natspacer.ConsumeStats
	testenv.WaitFor(t, 5*time.Second, "InFlight 2 and Permits min(8, Window) > 1 (the cap less what is held, within the window: 90 messages are pending)", func() bool {
		st = c.Stats()
		return st.InFlight == 2 && st.Permits == min(8, st.Window) && st.Permits > 1
	})
	t.Logf("after a short Fetch whose message said NumPending 90: %d permits held for the next Fetch; stats %+v", st.Permits, st)
}

// TestWindowSlowHandlers: two handlers of 200ms start 10 messages a second
// while the pace gives 50 permits a second. With a fixed in-flight window
// (the default MaxInFlight is 1000) 40 more messages a second would be
// fetched to wait for a handler, until they outlived AckWait; the window
// sizes itself instead: at every handler start at most a few messages
// wait for a handler (no more than the handlers start in a quarter of
// AckWait), none is held ProgressEvery (half the AckWait of 2s), so none
// needs InProgress, and none is redelivered.
func TestWindowSlowHandlers(t *testing.T) {
	t.Parallel()
	const msgs, pace, work, conc, ackWait = 40, 50, 200 * time.Millisecond, 2, 2 * time.Second
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: ackWait})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: pace})
	var cp atomic.Pointer[natspacer.Consumption]
	var mu sync.Mutex
	var waiting []int // Stats().Waiting at each handler start
	rec := newRecorder(func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		if c := cp.Load(); c != nil {
			w := c.Stats().Waiting
			mu.Lock()
			waiting = append(waiting, w)
			mu.Unlock()
		}
		select {
		case <-time.After(work):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(conc))
	cp.Store(c)
	testenv.WaitFor(t, 30*time.Second, "every message handled", func() bool { return rec.distinct() == msgs })
	testenv.WaitFor(t, 5*time.Second, "every ack processed", func() bool { return f.info(t).NumAckPending == 0 })

	st, info := c.Stats(), f.info(t)
	mu.Lock()
	most := slices.Max(waiting)
	mu.Unlock()
	// The handlers start conc/work = 10 a second: a quarter of AckWait.
	bound := int(float64(conc) / work.Seconds() * ackWait.Seconds() / 4)
	t.Logf("pace %d/s, handlers %d × %v: at most %d messages waited for a handler (bound %d); window now %d; stats %+v",
		pace, conc, work, most, bound, st.Window, st)
	if most > bound {
		t.Errorf("at a handler start up to %d messages waited for a handler, want ≤ %d (what the handlers start in AckWait/4)", most, bound)
	}
	if st.Progress != 0 {
		t.Errorf("Stats().Progress = %d, want 0: a message was held ProgressEvery (%v), half its AckWait", st.Progress, ackWait/2)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("consumer NumRedelivered = %d, want 0", info.NumRedelivered)
	}
}

// TestWindowShrinks: at an unlimited pace with instant handlers the window
// grows to the in-flight cap; then the pace drops to 50/s and two handlers
// of 200ms start only 10 messages a second. The window shrinks to a few
// messages, so after the first few slow messages at most a few wait for a
// handler, and none is redelivered.
func TestWindowShrinks(t *testing.T) {
	t.Parallel()
	const fast, slow, pace, work, conc, ackWait = 3000, 40, 50, 200 * time.Millisecond, 2, 2 * time.Second
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{AckWait: ackWait})
	f.publish(t, fast)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1e9})
	var cp atomic.Pointer[natspacer.Consumption]
	var slowMode atomic.Bool
	var mu sync.Mutex
	var grown int     // the largest window seen while fast
	var waiting []int // Stats().Waiting at each slow handler start
	rec := newRecorder(func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		c := cp.Load()
		if c == nil {
			return nil
		}
		st := c.Stats()
		if !slowMode.Load() {
			mu.Lock()
			grown = max(grown, st.Window)
			mu.Unlock()
			return nil
		}
		mu.Lock()
		waiting = append(waiting, st.Waiting)
		mu.Unlock()
		select {
		case <-time.After(work):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(conc))
	cp.Store(c)
	testenv.WaitFor(t, 30*time.Second, "the fast messages handled", func() bool { return rec.distinct() == fast })
	// The fetches out when the stream ran dry hold permits given at the
	// fast pace until they come back empty (PollWait); then one permit
	// waits in a long poll.
	testenv.WaitFor(t, 5*time.Second, "one permit left, in a long poll", func() bool { return c.Stats().Permits <= 1 })
	before := c.Stats().Window

	slowMode.Store(true)
	if err := p.SetBase(pace); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRate(pace); err != nil {
		t.Fatal(err)
	}
	f.publish(t, slow)
	testenv.WaitFor(t, 30*time.Second, "the slow messages handled", func() bool { return rec.distinct() == fast+slow })
	testenv.WaitFor(t, 5*time.Second, "every ack processed", func() bool { return f.info(t).NumAckPending == 0 })

	st, info := c.Stats(), f.info(t)
	mu.Lock()
	defer mu.Unlock()
	late := waiting[len(waiting)/4:] // after the first quarter of the slow messages
	// The handlers start conc/work = 10 a second: a quarter of AckWait.
	bound := int(float64(conc) / work.Seconds() * ackWait.Seconds() / 4)
	t.Logf("fast: window grew to %d (%d when the stream ran dry); slow (pace %d/s, handlers %d × %v): "+
		"waiting at each start %v; window now %d; stats %+v", grown, before, pace, conc, work, waiting, st.Window, st)
	if grown < 64 {
		t.Errorf("while fast the window grew to %d, want ≥ 64: the test proves nothing", grown)
	}
	if most := slices.Max(late); most > bound {
		t.Errorf("after the first %d slow messages up to %d waited for a handler, want ≤ %d (what the handlers start in AckWait/4)",
			len(waiting)/4, most, bound)
	}
	if st.Window > bound {
		t.Errorf("Stats().Window = %d at the end, want ≤ %d", st.Window, bound)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("consumer NumRedelivered = %d, want 0", info.NumRedelivered)
	}
}

// A handler calling a downstream at its limit (100/s, 429 beyond it) under
// a ceiling of 200/s: the pace finds the limit; every message is acked
// exactly once, none terminated, none counted failed.
func TestDownstreamAtItsLimitLosesNothing(t *testing.T) {
	const msgs = 400
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 200, Burst: 10})
	ds := &testenv.LimitedDownstream{Rate: 100}
	rec := newRecorder(func(context.Context, jetstream.Msg, *jetstream.MsgMetadata) error {
		time.Sleep(5 * time.Millisecond)
		return ds.Call()
	})
	start := time.Now()
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(20))
	testenv.WaitFor(t, 60*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
	took := time.Since(start)
	testenv.WaitFor(t, 5*time.Second, "every ack processed", func() bool { return f.info(t).NumAckPending == 0 })

	s, cs := p.Stats(), c.Stats()
	t.Logf("%d messages in %v (%.0f/s; the downstream takes 100/s); pacer: dispatched %d, throttled %d, cuts %d, pauses %d, reason %s, capacity %.0f/s; consumption %+v",
		msgs, took.Round(time.Millisecond), msgs/took.Seconds(), s.Dispatched, s.Throttled, s.Cuts, s.Pauses, s.Reason, s.Capacity, cs)
	if s.Failed != 0 || s.Throttled == 0 || cs.Terminated != 0 {
		t.Errorf("pacer Failed = %d, Throttled = %d, Terminated = %d; want 0, > 0 (else the test proves nothing), 0", s.Failed, s.Throttled, cs.Terminated)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for seq := uint64(1); seq <= msgs; seq++ {
		if n := rec.succeeded[seq]; n != 1 {
			t.Errorf("message %d acked %d times, want exactly once", seq, n)
		}
	}
}

// A handler whose downstream refuses the connection reports pushback: the
// message is nakked with the RetryAfter delay (not the failure backoff),
// the pacer counts it throttled, not failed, and it is acked once later.
func TestUnavailableDownstreamIsPushback(t *testing.T) {
	const msgs = 10
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1000})
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	rec := newRecorder(func(_ context.Context, _ jetstream.Msg, md *jetstream.MsgMetadata) error {
		if md.NumDelivered == 1 {
			return fmt.Errorf("calling the API: %w", refused)
		}
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.RetryAfter(100*time.Millisecond))
	testenv.WaitFor(t, 20*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
	testenv.WaitFor(t, 5*time.Second, "every ack processed", func() bool { return f.info(t).NumAckPending == 0 })
	s, cs := p.Stats(), c.Stats()
	if cs.Throttled != msgs || cs.Nakked != 0 || s.Throttled != msgs || s.Failed != 0 {
		t.Errorf("consumption throttled %d, nakked %d; pacer throttled %d, failed %d; want %d, 0, %d, 0", cs.Throttled, cs.Nakked, s.Throttled, s.Failed, msgs, msgs)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for seq := uint64(1); seq <= msgs; seq++ {
		if n := rec.succeeded[seq]; n != 1 {
			t.Errorf("message %d acked %d times, want exactly once", seq, n)
		}
	}
}

// A consumer with MaxDeliver 3 and a downstream that throttles every call
// for a while: a nak per throttle would use up each message's three
// deliveries and the server would drop it (issue: "MaxDeliver spent by
// throttling"). A throttle is nakked only while it leaves the message a
// delivery to spare beyond the next; on its last two deliveries the
// message is held and retried in place. Every message is acked once,
// none is dropped, and the server redelivered each at most twice.
func TestThrottlingNeverSpendsMaxDeliver(t *testing.T) {
	const msgs, maxDeliver = 20, 3
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{MaxDeliver: maxDeliver, AckWait: 2 * time.Second})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1000})
	var calls atomic.Int64
	rec := newRecorder(func(context.Context, jetstream.Msg, *jetstream.MsgMetadata) error {
		if calls.Add(1) <= 8*msgs { // every message throttled several times
			return pacer.Throttle(20*time.Millisecond, nil)
		}
		return nil
	})
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(msgs))
	testenv.WaitFor(t, 60*time.Second, "every message acked, or none left to deliver", func() bool {
		info := f.info(t)
		return rec.distinct() == msgs || info.NumPending == 0 && info.NumAckPending == 0 && c.Stats().InFlight == 0
	})
	cs := c.Stats()
	t.Logf("calls %d; consumption %+v", rec.callCount(), cs)
	checkHeld(t, cs)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for seq := uint64(1); seq <= msgs; seq++ {
		if n := rec.succeeded[seq]; n != 1 {
			t.Errorf("message %d acked %d times (deliveries seen %v), want exactly once", seq, n, rec.delivered[seq])
		}
		for _, d := range rec.delivered[seq] {
			if d >= maxDeliver {
				t.Errorf("message %d delivered %d times (deliveries seen %v), want < MaxDeliver %d: one kept for a fault", seq, d, rec.delivered[seq], maxDeliver)
				break
			}
		}
	}
}

func checkHeld(t *testing.T, cs natspacer.ConsumeStats) {
	t.Helper()
	if cs.HeldInPlace == 0 || cs.Exhausted != 0 {
		t.Errorf("HeldInPlace = %d, Exhausted = %d: want > 0 (else the test proves nothing), 0", cs.HeldInPlace, cs.Exhausted)
	}
}

// A handler behind a downstream that queues (4 servers × 5ms, no 429),
// 64 handlers, a pacer with the learned concurrency limit: every message
// is acked once, none counted failed or throttled, and the limit learned
// is about the servers, not the handlers.
func TestQueueingDownstreamLosesNothing(t *testing.T) {
	const msgs = 600
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, msgs)
	p := testenv.NewPacer(t, pacer.Config{Rate: 5000, Burst: 10, LatencyTarget: pacer.LatencyAuto})
	ds := &testenv.QueueingDownstream{Servers: 4, Service: 5 * time.Millisecond}
	rec := newRecorder(func(context.Context, jetstream.Msg, *jetstream.MsgMetadata) error { return ds.Call() })
	c := consume(t, t.Context(), f.cons, p, rec, natspacer.Concurrency(64))
	testenv.WaitFor(t, 60*time.Second, "every message acked", func() bool { return rec.distinct() == msgs })
	testenv.WaitFor(t, 5*time.Second, "every ack processed", func() bool { return f.info(t).NumAckPending == 0 })
	s, cs := p.Stats(), c.Stats()
	t.Logf("pacer: limit %d, cuts %d, no-load %v, p90 %v, reason %s; consumption %+v", s.ConcurrencyLimit, s.ConcurrencyCuts, s.LatencyNoLoad, s.LatencyP90, s.Reason, cs)
	if s.Failed != 0 || s.Throttled != 0 || cs.Nakked != 0 || cs.Terminated != 0 {
		t.Errorf("failed %d, throttled %d, nakked %d, terminated %d; want 0 each", s.Failed, s.Throttled, cs.Nakked, cs.Terminated)
	}
	if s.ConcurrencyLimit < 2 || s.ConcurrencyLimit > 16 {
		t.Errorf("learned concurrency limit %d, want about the 4 servers (2–16), not the 64 handlers", s.ConcurrencyLimit)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for seq := uint64(1); seq <= msgs; seq++ {
		if n := rec.succeeded[seq]; n != 1 {
			t.Errorf("message %d acked %d times, want exactly once", seq, n)
		}
	}
}

// A throttled outcome that names no retry-after is nakked with the
// pacer's own Config.DefaultRetryAfter (default_retry_after in
// config.toml), not natspacer's 1s: the message comes back no sooner.
func TestNakDelayIsThePacersDefault(t *testing.T) {
	const retry = 3 * time.Second
	f := newFixture(t, natsServer(t).URL(), jetstream.ConsumerConfig{})
	f.publish(t, 1)
	p := testenv.NewPacer(t, pacer.Config{Rate: 1000, DefaultRetryAfter: retry})
	var mu sync.Mutex
	var at []time.Time
	rec := newRecorder(func(_ context.Context, _ jetstream.Msg, md *jetstream.MsgMetadata) error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if md.NumDelivered == 1 {
			return pacer.Throttle(0, fmt.Errorf("503"))
		}
		return nil
	})
	consume(t, t.Context(), f.cons, p, rec)
	testenv.WaitFor(t, 20*time.Second, "the message acked", func() bool { return rec.distinct() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if gap := at[1].Sub(at[0]); gap < retry-50*time.Millisecond {
		t.Errorf("redelivered %v after a throttle with no retry-after, want ≥ the pacer's DefaultRetryAfter %v", gap, retry)
	}
}
