package pacer_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// queue is a simulated job queue: a backlog the test fills and the pacer
// drains. It is the Pacer's Probe.
type queue struct{ pending atomic.Int64 }

func (q *queue) Backlog(context.Context) (pacer.Backlog, error) {
	return pacer.Backlog{Pending: q.pending.Load()}, nil
}

func newPacer(t *testing.T, c pacer.Config) (*pacer.Pacer, *testutil.Clock) {
	t.Helper()
	clk := testutil.NewClock(t0)
	c.Clock = clk
	p, err := pacer.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p, clk
}

// sim drives a pacer on the fake clock in steps of dt: each step it
// dispatches what the pacer admits from the queue, and at each period
// boundary it runs the controller. It records dispatch times and the
// factor after each period.
type sim struct {
	p       *pacer.Pacer
	clk     *testutil.Clock
	q       *queue
	period  time.Duration
	sent    []time.Duration // dispatch times since t0
	factors []float64
}

func (s *sim) run(t *testing.T, d, dt time.Duration) {
	t.Helper()
	end := s.clk.Now().Add(d)
	for s.clk.Now().Before(end) {
		s.clk.Advance(dt)
		for s.q.pending.Load() > 0 {
			pm, ok := s.p.TryAcquire(1)
			if !ok {
				break
			}
			s.q.pending.Add(-1)
			s.sent = append(s.sent, s.clk.Now().Sub(t0))
			pm.Done(nil)
		}
		if s.clk.Now().Sub(t0)%s.period == 0 {
			s.p.Step(context.Background())
			s.factors = append(s.factors, s.p.Stats().Factor)
		}
	}
}

// maxInWindow returns the most dispatches in any window of length w.
func maxInWindow(sent []time.Duration, w time.Duration) int {
	most, j := 0, 0
	for i := range sent {
		for sent[i]-sent[j] >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// The controller's step response: the backlog jumps from 0 to 10× the band
// and drains. The factor rises, dispatch never passes the ceiling, the
// queue drains faster than the base pace, and the factor comes back to
// exactly 1 with one peak and no dip below 1.
func TestControllerStepResponse(t *testing.T) {
	t.Parallel()
	const rate, base, high = 400, 50, 100
	q := &queue{}
	p, clk := newPacer(t, pacer.Config{Rate: rate, Base: base, BacklogHigh: high, Period: time.Second, Probe: q})
	s := &sim{p: p, clk: clk, q: q, period: time.Second}
	s.run(t, 5*time.Second, time.Millisecond)
	if f := p.Stats().Factor; f != 1 {
		t.Fatalf("factor with no backlog = %v, want 1", f)
	}
	q.pending.Store(10 * high)
	stepAt := clk.Now().Sub(t0)
	s.run(t, 60*time.Second, time.Millisecond)

	if q.pending.Load() != 0 {
		t.Fatalf("%d jobs left after 60s", q.pending.Load())
	}
	t.Logf("factor each period: %.3g", s.factors)
	drained := s.sent[len(s.sent)-1] - stepAt
	if atBase := time.Duration(10 * high / base * float64(time.Second)); drained >= atBase {
		t.Errorf("drained %d jobs in %v, want faster than the base pace's %v", 10*high, drained, atBase)
	}
	for _, w := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second, 5 * time.Second} {
		if got, limit := maxInWindow(s.sent, w), int(1+rate*w.Seconds()); got > limit {
			t.Errorf("%d dispatches in a window of %v, ceiling allows %d", got, w, limit)
		}
	}
	peak, peaks := 0.0, 0
	for i, f := range s.factors {
		peak = max(peak, f)
		if f < 1 {
			t.Errorf("factor %v below 1 at period %d: backlog alone must not slow the pace", f, i)
		}
		if i > 0 && i+1 < len(s.factors) && f > s.factors[i-1] && f > s.factors[i+1] {
			peaks++
		}
		if i > 0 && i+1 < len(s.factors) && f > s.factors[i-1] && f == s.factors[i+1] {
			peaks++ // a plateau at the top counts once, where it starts
		}
	}
	if peak <= 1 {
		t.Errorf("factor never rose: peak %v", peak)
	}
	if peak > rate/base {
		t.Errorf("factor peaked at %v, past the ceiling's %v", peak, float64(rate)/base)
	}
	if peaks > 1 {
		t.Errorf("factor overshot %d times: %v", peaks, s.factors)
	}
	if last := s.factors[len(s.factors)-1]; last != 1 {
		t.Errorf("factor at the end = %v, want 1; trajectory %v", last, s.factors)
	}
}

// A storm of 429s from jobs dispatched together is one pushback: one cut,
// one pause for its retry-after, not one per job. With no good rate
// measured yet, the cut is Config.Cut.
func TestThrottleStormPausesOnce(t *testing.T) {
	t.Parallel()
	p, clk := newPacer(t, pacer.Config{Rate: 1000, Burst: 20, BaseBurst: 20})
	var permits []*pacer.Permit
	for i := 0; i < 10; i++ {
		pm, ok := p.TryAcquire(1)
		if !ok {
			t.Fatalf("permit %d refused", i)
		}
		permits = append(permits, pm)
	}
	clk.Advance(10 * time.Millisecond)
	for _, pm := range permits {
		pm.Done(pacer.Throttle(500*time.Millisecond, errors.New("429 Too Many Requests")))
	}
	st := p.Stats()
	if st.Pauses != 1 || st.Throttled != 10 || st.Cuts != 1 || math.Abs(st.Factor-0.5) > 1e-9 {
		t.Fatalf("after 10 throttled jobs: pauses %d, throttled %d, cuts %d, factor %v; want 1, 10, 1, 0.5", st.Pauses, st.Throttled, st.Cuts, st.Factor)
	}
	if want := clk.Now().Add(500 * time.Millisecond); !st.PausedUntil.Equal(want) {
		t.Fatalf("paused until %v, want %v", st.PausedUntil.Sub(t0), want.Sub(t0))
	}
	clk.Advance(499 * time.Millisecond)
	if _, ok := p.TryAcquire(1); ok {
		t.Fatal("a permit was given during the pause")
	}
	clk.Advance(time.Millisecond)
	// resumes from empty at the cut pace: one job per 2ms
	clk.Advance(2 * time.Millisecond)
	pm, ok := p.TryAcquire(1)
	if !ok {
		t.Fatal("no permit after the pause ended")
	}
	// A job dispatched after the pause is a new pushback: a second pause.
	pm.Done(pacer.Throttle(100*time.Millisecond, nil))
	if st := p.Stats(); st.Pauses != 2 || st.Cuts != 2 || math.Abs(st.Factor-0.25) > 1e-2 {
		t.Fatalf("after a new pushback in the storm: pauses %d, cuts %d, factor %v; want 2, 2, 0.25", st.Pauses, st.Cuts, st.Factor)
	}
}

// After pushback the controller probes the pace back up to where it was.
func TestFactorRecoversAfterPushback(t *testing.T) {
	t.Parallel()
	p, clk := newPacer(t, pacer.Config{Rate: 100, Period: time.Second})
	pm, _ := p.TryAcquire(1)
	pm.Done(pacer.Throttle(0, nil)) // no retry-after: DefaultRetryAfter, 1s
	if st := p.Stats(); math.Abs(st.Factor-0.5) > 1e-9 || st.Pauses != 0 {
		t.Fatalf("after one 429: factor %v, pauses %d; want 0.5 (no good rate measured yet: Cut), 0", st.Factor, st.Pauses)
	}
	got := []float64{0.5}
	for i := 0; i < 5; i++ {
		clk.Advance(time.Second)
		p.Step(context.Background())
		got = append(got, p.Stats().Factor)
		if got[i+1] < got[i] {
			t.Fatalf("factor fell while recovering: %v", got)
		}
	}
	if got[len(got)-1] != 1 {
		t.Errorf("factor did not recover to 1: %v", got)
	}
}

type failingProbe struct{ calls atomic.Int64 }

func (f *failingProbe) Backlog(context.Context) (pacer.Backlog, error) {
	if f.calls.Add(1) > 2 {
		return pacer.Backlog{}, errors.New("redis: connection refused")
	}
	return pacer.Backlog{Pending: 1000}, nil
}

func TestProbeFailureKeepsFactor(t *testing.T) {
	t.Parallel()
	probe := &failingProbe{}
	p, _ := newPacer(t, pacer.Config{Rate: 1000, Base: 10, BacklogHigh: 100, Probe: probe})
	p.Step(context.Background())
	p.Step(context.Background())
	raised := p.Stats().Factor
	if math.Abs(raised-1.96) > 1e-12 {
		t.Fatalf("factor after two deep-backlog periods = %v, want 1.96", raised)
	}
	for i := 0; i < 3; i++ {
		p.Step(context.Background())
	}
	st := p.Stats()
	if st.Factor != raised || st.ProbeErrors != 3 || st.Backlog.Pending != 1000 {
		t.Fatalf("after 3 failed probes: factor %v, probe errors %d, backlog %d; want %v, 3, 1000 (the last read)",
			st.Factor, st.ProbeErrors, st.Backlog.Pending, raised)
	}
}

func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, _ := newPacer(t, pacer.Config{Rate: 1e6, Burst: 100, BaseBurst: 100, MaxInFlight: 2})
		ctx := context.Background()
		a, err := p.Acquire(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { _, err := p.Acquire(ctx, 1); got <- err }()
		synctest.Wait() // the third caller has returned or is blocked
		select {
		case err := <-got:
			t.Fatalf("third Acquire returned %v with 2 in flight and a cap of 2", err)
		default:
		}
		if n := pacer.SlotWaiters(p); n != 1 {
			t.Fatalf("%d callers queued for a slot, want 1", n)
		}
		a.Done(nil)
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.InFlight != 2 || st.Dispatched != 3 || st.Succeeded != 1 {
			t.Fatalf("stats %+v; want 2 in flight, 3 dispatched, 1 succeeded", st)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := p.Acquire(cctx, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("Acquire on a cancelled context = %v", err)
		}
		if _, err := p.Acquire(ctx, 3); !errors.Is(err, pacer.ErrInvalid) {
			t.Fatalf("Acquire(3) with max_in_flight 2 = %v, want ErrInvalid", err)
		}
	})
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	q := &queue{}
	q.pending.Store(1000)
	p, clk := newPacer(t, pacer.Config{Rate: 100, Base: 10, BacklogHigh: 100, Probe: q})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for i := 0; i < 3; i++ {
		clk.WaitTimers(1)
		clk.Advance(time.Second)
	}
	clk.WaitTimers(1)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if f := p.Stats().Factor; f <= 1 {
		t.Fatalf("factor %v after 3 periods of deep backlog under Run, want > 1", f)
	}
}

func TestPacerValidation(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name  string
		c     pacer.Config
		field string
	}{
		{"no rate", pacer.Config{}, "rate"},
		{"negative burst", pacer.Config{Rate: 1, Burst: -1}, "burst"},
		{"base above rate", pacer.Config{Rate: 10, Base: 20}, "base"},
		{"min above max factor", pacer.Config{Rate: 10, MinFactor: 0.9, MaxFactor: 0.5}, "min_factor"},
		{"negative in flight", pacer.Config{Rate: 10, MaxInFlight: -1}, "max_in_flight"},
		{"cut above 1", pacer.Config{Rate: 10, Cut: 2}, "cut"},
		{"bad adjmap", pacer.Config{Rate: 10, AdjMap: pacer.DefaultAdjMap()[:1]}, "adjmap[0].min_cap"},
		{"base burst above burst", pacer.Config{Rate: 10, Burst: 2, BaseBurst: 3}, "base_burst"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pacer.New(tc.c)
			checkInvalid(t, err, tc.field)
		})
	}
	p, _ := newPacer(t, pacer.Config{Rate: 10, Base: 5})
	checkInvalid(t, p.SetRate(4), "rate")
	checkInvalid(t, p.SetBase(11), "base")
	if _, err := p.Acquire(context.Background(), -1); !errors.Is(err, pacer.ErrInvalid) {
		t.Fatalf("Acquire(-1) = %v, want ErrInvalid", err)
	}
}

func TestPermitCancelGivesBack(t *testing.T) {
	t.Parallel()
	p, _ := newPacer(t, pacer.Config{Rate: 10, Burst: 5, BaseBurst: 5, MaxInFlight: 5})
	pm, ok := p.TryAcquire(5)
	if !ok {
		t.Fatal("TryAcquire(5) on a full pacer failed")
	}
	if _, ok := p.TryAcquire(1); ok {
		t.Fatal("a sixth permit was given with burst 5")
	}
	pm.CancelN(3) // a fetch brought only 2 jobs
	rest := pm
	if rest.N() != 2 {
		t.Fatalf("CancelN(3) of 5 left %d, want 2", rest.N())
	}
	st := p.Stats()
	if st.Dispatched != 2 || st.InFlight != 2 {
		t.Fatalf("after CancelN(3): dispatched %d, in flight %d; want 2, 2", st.Dispatched, st.InFlight)
	}
	again, ok := p.TryAcquire(3)
	if !ok {
		t.Fatal("the 3 given back could not be taken again")
	}
	again.Cancel()
	rest.Done(nil)
	if st := p.Stats(); st.Dispatched != 2 || st.Succeeded != 2 || st.InFlight != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v; want dispatched 2, succeeded 2, none in flight or failed", st)
	}
}

func TestAcquireAfterClose(t *testing.T) {
	t.Parallel()
	p, _ := newPacer(t, pacer.Config{Rate: 10, Burst: 5, BaseBurst: 5})
	p.Close()
	if _, err := p.Acquire(context.Background(), 1); !errors.Is(err, pacer.ErrClosed) {
		t.Fatalf("Acquire after Close with tokens free = %v, want ErrClosed", err)
	}
	if _, ok := p.TryAcquire(1); ok {
		t.Fatal("TryAcquire after Close succeeded")
	}
}

// Many goroutines asking at once, timers that wake late: the pacer still
// admits exactly rate × t (plus the burst). While callers queue, the
// schedule runs on uncapped, so a head woken late, by its timer or by the
// scheduler, takes on the schedule.
func TestPacerConcurrentLateWakesKeepTheSchedule(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, clk := newPacer(t, pacer.Config{Rate: 1000}) // base = ceiling = 1000/s, bursts 1
		ctx, cancel := context.WithCancel(context.Background())
		var got atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					pm, err := p.Acquire(ctx, 1)
					if err != nil {
						return
					}
					got.Add(1)
					pm.Done(nil)
				}
			}()
		}
		// settle waits until the callers stop taking: every permit due by now
		// taken and the heads asleep on their timers (synctest.Wait: every
		// goroutine of the bubble blocked). Advancing the fake clock while a
		// caller is still running would be a preemption longer than any real
		// one.
		settle := func() {
			synctest.Wait()
			if clk.Timers() == 0 {
				t.Fatal("the callers are blocked but none sleeps on the clock")
			}
		}
		for clk.Now().Sub(t0) < 250*time.Millisecond {
			settle()
			clk.Advance(2500 * time.Microsecond) // every timer wakes up to 1.5ms late
		}
		settle()
		cancel()
		wg.Wait()
		n := got.Load()
		want := int64(clk.Now().Sub(t0)/time.Millisecond) + 1
		if n != want {
			t.Fatalf("4 callers got %d permits in %v at 1000/s with late timers, want %d", n, clk.Now().Sub(t0), want)
		}
	})
}

// countingLimiter admits everything and counts what it admitted and what
// came back.
type countingLimiter struct{ admitted, refunded atomic.Int64 }

func (l *countingLimiter) Wait(ctx context.Context, n int) error {
	l.admitted.Add(int64(n))
	return nil
}

func (l *countingLimiter) Refund(n int) { l.refunded.Add(int64(n)) }

func TestCancelRefundsTheLimiter(t *testing.T) {
	t.Parallel()
	lim := &countingLimiter{}
	p, _ := newPacer(t, pacer.Config{Rate: 100, Burst: 5, Limiter: lim})
	pm, err := p.Acquire(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	pm.CancelN(3)
	pm.Done(nil)
	if a, r := lim.admitted.Load(), lim.refunded.Load(); a != 4 || r != 3 {
		t.Fatalf("limiter admitted %d, refunded %d; want 4 and 3", a, r)
	}
}

// A permit given back during a pause, or a rate changed during one, does
// not shorten the pause.
func TestPauseSurvivesCancelAndRateChange(t *testing.T) {
	t.Parallel()
	for _, change := range []string{"cancel", "set base", "set rate"} {
		t.Run(change, func(t *testing.T) {
			p, clk := newPacer(t, pacer.Config{Rate: 100, Base: 10, Burst: 100})
			big, ok := p.TryAcquire(99)
			if !ok {
				t.Fatal("TryAcquire(99) on a full pacer failed")
			}
			one, _ := p.TryAcquire(1)
			one.Done(pacer.Throttle(5*time.Second, nil))
			switch change {
			case "cancel":
				big.Cancel()
			case "set base":
				big.Done(nil)
				if err := p.SetBase(100); err != nil {
					t.Fatal(err)
				}
			case "set rate":
				big.Done(nil)
				if err := p.SetRate(1000); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(4999 * time.Millisecond)
			if _, ok := p.TryAcquire(1); ok {
				t.Fatalf("after %s, a permit was given during the 5s pause", change)
			}
			clk.Advance(250 * time.Millisecond) // the pace after the cut: ≥ 5/s, one in ≤ 200ms
			if _, ok := p.TryAcquire(1); !ok {
				t.Fatalf("after %s, no permit once the pause ended", change)
			}
		})
	}
}

func TestCloseWakesInFlightWaiters(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, _ := newPacer(t, pacer.Config{Rate: 100, MaxInFlight: 1})
		held, ok := p.TryAcquire(1)
		if !ok {
			t.Fatal("first permit refused")
		}
		defer held.Done(nil)
		got := make(chan error, 1)
		go func() { _, err := p.Acquire(context.Background(), 1); got <- err }()
		synctest.Wait()
		if got := pacer.SlotWaiters(p); got != 1 {
			t.Fatalf("%d callers queued for the slot, want 1", got)
		}
		p.Close()
		select {
		case err := <-got:
			if !errors.Is(err, pacer.ErrClosed) {
				t.Fatalf("Acquire waiting for a slot returned %v after Close, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Acquire waiting for a slot did not return after Close")
		}
	})
}

// Ranges that would overflow the schedule's ticks are refused, and a take
// above the capacity never wraps into a success.
func TestOverflowRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ rate, capacity float64 }{{0.001, 1e6}, {1e-7, 100}} {
		_, err := pacer.NewTokenBucket(c.rate, c.capacity, nil)
		checkInvalid(t, err, "capacity / rate")
	}
	_, err := pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: 1e6, Leak: 0.01})
	checkInvalid(t, err, "capacity / rate")
	b, _ := newClockBucket(t, 1, 1)
	if b.TryAcquireAt(t0.Add(10*time.Second), 1e9) {
		t.Fatal("TryAcquireAt(1e9) on capacity 1 succeeded")
	}
	if got := b.TokensAt(t0.Add(10 * time.Second)); got != 1 {
		t.Fatalf("TokensAt = %v after a refused huge take, want 1", got)
	}
	p, _ := newPacer(t, pacer.Config{Rate: 10})
	if _, ok := p.TryAcquire(1 << 40); ok {
		t.Fatal("TryAcquire(2^40) succeeded")
	}
}

func TestEstimateWaitCountsQueuedJobs(t *testing.T) {
	t.Parallel()
	p, clk := newPacer(t, pacer.Config{Rate: 10}) // one job per 100ms, burst 1
	if d := p.EstimateWait(1); d != 0 {
		t.Fatalf("EstimateWait(1) on a full pacer = %v, want 0", d)
	}
	pm, _ := p.TryAcquire(1)
	pm.Done(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 1)
	go func() { _, err := p.Acquire(ctx, 5); errs <- err }() // 5 jobs queued
	clk.WaitTimers(1)
	if got, want := p.EstimateWait(1), 600*time.Millisecond; got != want {
		t.Fatalf("EstimateWait(1) behind a caller of 5 = %v, want %v", got, want)
	}
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v after cancel", err)
	}
}
