package pacer_test

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// x/time/rate's step tables (golang.org/x/time@v0.16.0/rate/rate_test.go),
// in this package's form: a Limiter of rate r and burst b is a TokenBucket
// of rate r and capacity b, AllowN(t, n) is TryAcquireAt(t, n), and d is
// 100ms. x/time/rate's t0 is taken at package init, before any limiter is
// made, so each table runs on a bucket made at t0 and on buckets made a
// little after it (made): a new bucket is full at whatever time it is
// first asked at.
const xd = 100 * time.Millisecond

var madeAfter = []time.Duration{0, 4 * time.Microsecond, time.Millisecond}

// newBucketAt returns a bucket made at t0+made on the fake clock.
func newBucketAt(t *testing.T, made time.Duration, rate, capacity float64) *pacer.TokenBucket {
	t.Helper()
	b, err := pacer.NewTokenBucket(rate, capacity, testutil.NewClock(t0.Add(made)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runXRate runs steps on a bucket of rate and capacity made at each of
// madeAfter.
func runXRate(t *testing.T, rate, capacity float64, steps []takeStep) {
	t.Helper()
	for _, made := range madeAfter {
		t.Run("made t0+"+made.String(), func(t *testing.T) {
			runTakeSteps(t, newBucketAt(t, made, rate, capacity), steps)
		})
	}
}

// TestLimiterBurst1.
func TestXRateBurst1(t *testing.T) {
	t.Parallel()
	runXRate(t, 10, 1, []takeStep{
		{0, 1, true},
		{0, 1, false},
		{0, 1, false},
		{xd, 1, true},
		{xd, 1, false},
		{xd, 1, false},
		{2 * xd, 2, false}, // burst size is 1, so n=2 always fails
		{2 * xd, 1, true},
		{2 * xd, 1, false},
	})
}

// TestLimiterBurst3.
func TestXRateBurst3(t *testing.T) {
	t.Parallel()
	runXRate(t, 10, 3, []takeStep{
		{0, 2, true},
		{0, 2, false},
		{0, 1, true},
		{0, 1, false},
		{xd, 4, false},
		{2 * xd, 1, true},
		{3 * xd, 1, true},
		{4 * xd, 1, true},
		{4 * xd, 1, true},
		{4 * xd, 1, false},
		{4 * xd, 1, false},
		{9 * xd, 3, true},
		{9 * xd, 0, true}, // nothing asked, nothing refused
	})
}

// jumpBack is TestLimiterJumpBackwards (rate 10, burst 3) but for one step.
// A time before the latest one seen is taken as the latest: it neither
// takes tokens away nor gives any. x/time/rate takes it as its last time
// too, but then moves its last time back to it, so that the 100ms from t0
// to t1 count twice and the step marked below gets a token; a caller
// alternating t0 and t1 would mint one each time, past the
// Capacity + Rate × W bound.
var jumpBack = []takeStep{
	{xd, 1, true}, // start at t1
	{0, 1, true},  // jump back to t0, two tokens remain
	{0, 1, true},
	{0, 1, false},
	{0, 1, false},
	{xd, 1, false}, // x/time/rate: true, its t0 to t1 again
	{xd, 1, false},
	{xd, 1, false},
	{2 * xd, 1, true}, // got another token
	{2 * xd, 1, false},
	{2 * xd, 1, false},
}

func TestXRateJumpBackwards(t *testing.T) {
	t.Parallel()
	runXRate(t, 10, 3, jumpBack)
}

// TestSimultaneousRequests: 15 callers at once on a bucket of 5 at 1/s,
// time standing still; exactly the burst passes.
func TestXRateSimultaneousRequests(t *testing.T) {
	t.Parallel()
	for _, made := range madeAfter {
		t.Run("made t0+"+made.String(), func(t *testing.T) {
			b := newBucketAt(t, made, 1, 5)
			var ok atomic.Int32
			var wg sync.WaitGroup
			for range 15 {
				wg.Go(func() {
					if b.TryAcquireAt(t0, 1) {
						ok.Add(1)
					}
				})
			}
			wg.Wait()
			if got := ok.Load(); got != 5 {
				t.Errorf("%d of 15 simultaneous TryAcquireAt(t0, 1) passed, want the burst, 5", got)
			}
		})
	}
}

// TestLimiter_noTruncationErrors (golang.org/issues/34861): rate 10/13,
// burst 1; and the next token is due 1.3s later, to the nanosecond.
func TestXRateNoTruncationErrors(t *testing.T) {
	t.Parallel()
	runXRate(t, 0.7692307692307693, 1, []takeStep{
		{0, 1, true},
		{ms(1299.999999), 1, false},
		{ms(1300), 1, true},
	})
}

// The jump-back steps on the other two: a LeakyBucket of capacity 3
// leaking 10/s (manual, and adapting with a period longer than the test),
// and a Pacer at 10/s with burst 3 whose clock is stepped back.
func TestLeakyJumpBackwards(t *testing.T) {
	t.Parallel()
	for _, manual := range []bool{true, false} {
		for _, made := range madeAfter {
			b, err := pacer.NewLeakyBucket(pacer.LeakyConfig{
				Capacity: 3, Leak: 10, Manual: manual, Period: time.Minute,
				Clock: testutil.NewClock(t0.Add(made)),
			})
			if err != nil {
				t.Fatal(err)
			}
			runTakeSteps(t, b, jumpBack)
		}
	}
}

// backClock is a testutil.Clock that can also be set back, as a wall
// clock stepped back: Now reads the fake time less back.
type backClock struct {
	*testutil.Clock
	back atomic.Int64 // nanoseconds
}

func (c *backClock) Now() time.Time { return c.Clock.Now().Add(-time.Duration(c.back.Load())) }

// setTo makes Now read t: forward by moving the fake clock, back by the
// offset.
func (c *backClock) setTo(t time.Time) {
	if fake := c.Clock.Now(); t.After(fake) {
		c.back.Store(0)
		c.Clock.Set(t)
	} else {
		c.back.Store(int64(fake.Sub(t)))
	}
}

func TestPacerJumpBackwards(t *testing.T) {
	t.Parallel()
	for _, made := range madeAfter {
		clk := &backClock{Clock: testutil.NewClock(t0.Add(made))}
		p, err := pacer.New(pacer.Config{Rate: 10, Burst: 3, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range jumpBack {
			clk.setTo(t0.Add(s.at))
			pm, ok := p.TryAcquire(s.n)
			if ok != s.ok {
				t.Fatalf("made t0+%v, step %d: TryAcquire(%v) at t0+%v = %v, want %v", made, i, s.n, s.at, ok, s.ok)
			}
			pm.Done(nil)
		}
		if st := p.Stats(); st.Dispatched != 4 || st.Succeeded != 4 || st.InFlight != 0 {
			t.Fatalf("made t0+%v: dispatched %d, succeeded %d, in flight %d; want 4, 4, 0", made, st.Dispatched, st.Succeeded, st.InFlight)
		}
	}
}

// On the system clock too, a time read just before the bucket was made
// finds it full, and the explicit times after it are seen.
func TestSystemClockTimeBeforeMade(t *testing.T) {
	t.Parallel()
	before := time.Now()
	b, err := pacer.NewTokenBucket(10, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	runTakeSteps(t, timeFrom{b, before}, jumpBack)
}

// timeFrom gives a bucket times counted from start instead of t0.
type timeFrom struct {
	b     taker
	start time.Time
}

func (f timeFrom) TryAcquireAt(now time.Time, n int) bool {
	return f.b.TryAcquireAt(f.start.Add(now.Sub(t0)), n)
}

// Reading or changing a bucket at a time before the latest one seen reads
// or settles it at the latest: the balance is not rewritten.
func TestBackwardsTimeKeepsTheBalance(t *testing.T) {
	t.Parallel()
	b := newBucketAt(t, 0, 10, 3)
	if !b.TryAcquireAt(t0.Add(xd), 1) {
		t.Fatal("TryAcquireAt(t0+100ms, 1) on a full bucket = false")
	}
	if got := b.TokensAt(t0); got != 2 {
		t.Errorf("TokensAt(t0) after a take at t0+100ms = %v, want the 2 there at t0+100ms", got)
	}
	// Settled at t0+100ms (2 tokens), not at t0 (1 token, rescaled to 20/s).
	if err := b.SetRateAt(t0, 20); err != nil {
		t.Fatal(err)
	}
	if got := b.TokensAt(t0.Add(xd)); got != 2 {
		t.Errorf("TokensAt(t0+100ms) after SetRateAt(t0, 20) = %v, want 2", got)
	}
	if err := b.SetCapacityAt(t0, 3); err != nil {
		t.Fatal(err)
	}
	// A setter that leaves the balance as it was moves the schedule by a
	// tick (1/16 ns) so that no taker holds the old one.
	if got := b.TokensAt(t0.Add(xd)); math.Abs(got-2) > 1e-6 {
		t.Errorf("TokensAt(t0+100ms) after SetCapacityAt(t0, 3) = %v, want 2", got)
	}

	lb, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 3, Leak: 10, Manual: true})
	if !lb.TryAcquireAt(t0.Add(xd), 1) {
		t.Fatal("LeakyBucket.TryAcquireAt(t0+100ms, 1) on an empty bucket = false")
	}
	if got := lb.LevelAt(t0); got != 1 {
		t.Errorf("LevelAt(t0) after an acquire at t0+100ms = %v, want the 1 there at t0+100ms", got)
	}
	if err := lb.SetFactorAt(t0, 2); err != nil {
		t.Fatal(err)
	}
	if got := lb.LevelAt(t0.Add(xd)); got != 1 {
		t.Errorf("LevelAt(t0+100ms) after SetFactorAt(t0, 2) = %v, want 1", got)
	}
}

// n = 0 is granted: nothing asked, nothing refused. It is granted while
// others wait and takes nothing.
func TestZeroIsGranted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBucketAt(t, 0, 10, 1)
	if !b.TryAcquireAt(t0, 1) {
		t.Fatal("TryAcquireAt(t0, 1) on a full bucket = false")
	}
	if !b.TryAcquireAt(t0, 0) || !b.TryAcquire(0) {
		t.Error("TokenBucket.TryAcquire(0) on an empty bucket = false, want true")
	}
	if err := b.Acquire(ctx, 0); err != nil {
		t.Errorf("TokenBucket.Acquire(ctx, 0) = %v, want nil", err)
	}
	if got := b.TokensAt(t0); got != 0 {
		t.Errorf("TokensAt(t0) = %v after takes of 0, want 0", got)
	}

	lb, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 1, Leak: 10})
	if !lb.TryAcquireAt(t0, 1) {
		t.Fatal("LeakyBucket.TryAcquireAt(t0, 1) on an empty bucket = false")
	}
	if !lb.TryAcquireAt(t0, 0) || !lb.TryAcquire(0) {
		t.Error("LeakyBucket.TryAcquire(0) on a full bucket = false, want true")
	}
	if d, err := lb.Acquire(ctx, 0); d != 0 || err != nil {
		t.Errorf("LeakyBucket.Acquire(ctx, 0) = %v, %v, want 0, nil", d, err)
	}

	p, _ := newPacer(t, pacer.Config{Rate: 10, Burst: 1, MaxInFlight: 1})
	held, ok := p.TryAcquire(1)
	if !ok {
		t.Fatal("Pacer.TryAcquire(1) on a new pacer failed")
	}
	pm, ok := p.TryAcquire(0)
	if !ok || pm == nil || pm.N() != 0 {
		t.Errorf("Pacer.TryAcquire(0) with no slot and no pace = %v (N %d), %v; want a permit for 0 jobs, true", pm, pm.N(), ok)
	}
	pm.Done(nil)
	pm, err := p.Acquire(ctx, 0)
	if err != nil || pm == nil || pm.N() != 0 {
		t.Errorf("Pacer.Acquire(ctx, 0) = %v, %v; want a permit for 0 jobs, nil", pm, err)
	}
	pm.Cancel()
	held.Done(nil)
	if st := p.Stats(); st.Dispatched != 1 || st.Succeeded != 1 || st.InFlight != 0 || st.PermitMisuse != 0 {
		t.Errorf("stats %+v; want dispatched 1, succeeded 1, none in flight, no misuse: a permit for 0 jobs counts nowhere", st)
	}
}

// n = 0 still fails where every n does: Acquire after Close or with its
// context done, and a LeakyBucket's TryAcquire after Close.
func TestZeroAfterClose(t *testing.T) {
	t.Parallel()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	b := newBucketAt(t, 0, 10, 1)
	if err := b.Acquire(done, 0); err != context.Canceled {
		t.Errorf("TokenBucket.Acquire(cancelled, 0) = %v, want context.Canceled", err)
	}
	b.Close()
	if err := b.Acquire(context.Background(), 0); err != pacer.ErrClosed {
		t.Errorf("TokenBucket.Acquire(ctx, 0) after Close = %v, want ErrClosed", err)
	}
	lb, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 1, Leak: 10})
	lb.Close()
	if lb.TryAcquire(0) {
		t.Error("LeakyBucket.TryAcquire(0) after Close = true, want false: every TryAcquire fails")
	}
	if _, err := lb.Acquire(context.Background(), 0); err != pacer.ErrClosed {
		t.Errorf("LeakyBucket.Acquire(ctx, 0) after Close = %v, want ErrClosed", err)
	}
	p, _ := newPacer(t, pacer.Config{Rate: 10})
	if _, err := p.Acquire(done, 0); err != context.Canceled {
		t.Errorf("Pacer.Acquire(cancelled, 0) = %v, want context.Canceled", err)
	}
	p.Close()
	if _, err := p.Acquire(context.Background(), 0); err != pacer.ErrClosed {
		t.Errorf("Pacer.Acquire(ctx, 0) after Close = %v, want ErrClosed", err)
	}
	if _, ok := p.TryAcquire(0); ok {
		t.Error("Pacer.TryAcquire(0) after Close = true, want false")
	}
}
