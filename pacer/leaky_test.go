package pacer_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

func newLeaky(t *testing.T, c pacer.LeakyConfig) (*pacer.LeakyBucket, *testutil.Clock) {
	t.Helper()
	clk := testutil.NewClock(t0)
	c.Clock = clk
	b, err := pacer.NewLeakyBucket(c)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

const tick = 100 * time.Millisecond

// The bucket of asyncutils.buckets (Python) starts full, so the first acquires after creation fail.
func TestSeedBugStartsFull(t *testing.T) {
	t.Parallel()
	b, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 10, Leak: 1, Manual: true})
	if got := b.LevelAt(t0); got != 0 {
		t.Fatalf("LevelAt(t0) = %v on a new bucket, want 0", got)
	}
	if !b.TryAcquireAt(t0, 10) {
		t.Fatal("TryAcquireAt(t0, capacity) = false on a new bucket, want true: it starts empty")
	}
	if b.TryAcquireAt(t0, 1) {
		t.Fatal("TryAcquireAt(t0, 1) = true on a full bucket")
	}
}

// asyncutils.buckets (Python) adapts the factor on every call, so its pace depends on how
// often it is called. Here it adapts once per period whatever the calls.
func TestSeedBugAdaptsPerCall(t *testing.T) {
	t.Parallel()
	// Empty bucket: fill ratio 0 ≤ lbound 0.3, so each period multiplies
	// the factor by the catch-all row's lfactor, 1.4.
	b, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 100, Leak: 0.001})
	for i := 0; i < 1000; i++ {
		if f := b.FactorAt(t0.Add(tick / 2)); f != 1 {
			t.Fatalf("call %d within the first period: factor %v, want 1", i, f)
		}
	}
	for i := 0; i < 20; i++ { // fill ratio 0.2, still ≤ lbound
		b.TryAcquireAt(t0.Add(tick/2), 1)
	}
	if f := b.FactorAt(t0.Add(tick)); f != 1.4 {
		t.Fatalf("after one period the factor is %v, want 1.4", f)
	}
	if f := b.FactorAt(t0.Add(2*tick + tick/2)); math.Abs(f-1.96) > 1e-12 {
		t.Fatalf("after two periods the factor is %v, want 1.4² = 1.96", f)
	}
}

// holdLevel makes a bucket whose level stays at ratio × capacity for the
// length of the test (a leak too small to matter).
func holdLevel(t *testing.T, capacity, ratio float64) *pacer.LeakyBucket {
	t.Helper()
	b, _ := newLeaky(t, pacer.LeakyConfig{Capacity: capacity, Leak: 1e-6 * capacity})
	n := int(math.Round(ratio * capacity))
	if float64(n) != ratio*capacity {
		t.Fatalf("fill %v × capacity %v is not a whole number of tokens", ratio, capacity)
	}
	if ratio > 0 && !b.TryAcquireAt(t0, n) {
		t.Fatalf("could not fill to %v", ratio)
	}
	return b
}

// In asyncutils.buckets (Python) the factor, once above 1, never comes back down in the middle
// band. Here it returns to exactly 1 from both sides.
func TestSeedBugNeverReturnsFromAbove(t *testing.T) {
	t.Parallel()
	for _, start := range []float64{3, 0.5} {
		b := holdLevel(t, 10, 0.5) // between lbound 0.3 and ubound 0.7
		if err := b.SetFactorAt(t0, start); err != nil {
			t.Fatal(err)
		}
		var f float64
		for i := 1; i <= 10; i++ {
			f = b.FactorAt(t0.Add(time.Duration(i) * tick))
			if start > 1 && f < 1 || start < 1 && f > 1 {
				t.Fatalf("from %v: period %d factor %v crossed 1", start, i, f)
			}
		}
		if f != 1 {
			t.Fatalf("from %v: factor after 10 periods in the middle band = %v, want exactly 1", start, f)
		}
	}
}

// asyncutils.buckets (Python) stops adapting within 1 % of a bound, so the factor strands
// short of it. Here it reaches the bounds exactly.
func TestSeedBugDeadZoneNearBounds(t *testing.T) {
	t.Parallel()
	up := holdLevel(t, 10, 0) // empty: factor rises each period
	if f := up.FactorAt(t0.Add(100 * tick)); f != pacer.DefaultMaxFactor {
		t.Fatalf("empty bucket after 100 periods: factor %v, want exactly %v", f, pacer.DefaultMaxFactor)
	}
	down := holdLevel(t, 10, 1) // full: factor falls each period
	if f := down.FactorAt(t0.Add(100 * tick)); f != pacer.DefaultMinFactor {
		t.Fatalf("full bucket after 100 periods: factor %v, want exactly %v", f, pacer.DefaultMinFactor)
	}
	if err := down.SetFactorAt(t0.Add(100*tick), 1000); err != nil {
		t.Fatal(err)
	}
	if f := down.FactorAt(t0.Add(100 * tick)); f != pacer.DefaultMaxFactor {
		t.Fatalf("SetFactor(1000) gave factor %v, want it clamped to %v", f, pacer.DefaultMaxFactor)
	}
}

// asyncutils.buckets (Python) applies a new factor to the time elapsed before the change.
// Here the level is settled at the old factor first.
func TestSeedBugFactorChangeActsOnElapsedTime(t *testing.T) {
	t.Parallel()
	b, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 10, Leak: 1, Manual: true})
	b.TryAcquireAt(t0, 10)
	at5 := t0.Add(5 * time.Second)
	if got := b.LevelAt(at5); got != 5 {
		t.Fatalf("level after 5s at 1/s = %v, want 5", got)
	}
	if err := b.SetFactorAt(at5, 2); err != nil {
		t.Fatal(err)
	}
	if got := b.LevelAt(at5); got != 5 {
		t.Fatalf("level right after SetFactor(2) = %v, want 5: the past leaks at the old factor", got)
	}
	if got := b.LevelAt(at5.Add(time.Second)); got != 3 {
		t.Fatalf("level 1s after SetFactor(2) = %v, want 3", got)
	}
}

// asyncutils.buckets (Python) divides by zero on a zero capacity, leak or factor, and takes
// bad numbers silently. Here every one is an error naming the field.
func TestSeedBugDivideByZero(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name  string
		c     pacer.LeakyConfig
		field string
	}{
		{"zero capacity", pacer.LeakyConfig{Capacity: 0, Leak: 1}, "capacity"},
		{"zero leak", pacer.LeakyConfig{Capacity: 1, Leak: 0}, "leak"},
		{"NaN leak", pacer.LeakyConfig{Capacity: 1, Leak: math.NaN()}, "leak"},
		{"+Inf capacity", pacer.LeakyConfig{Capacity: math.Inf(1), Leak: 1}, "capacity"},
		{"negative min factor", pacer.LeakyConfig{Capacity: 1, Leak: 1, MinFactor: -1}, "min_factor"},
		{"NaN max factor", pacer.LeakyConfig{Capacity: 1, Leak: 1, MaxFactor: math.NaN()}, "max_factor"},
		{"min above max", pacer.LeakyConfig{Capacity: 1, Leak: 1, MinFactor: 0.9, MaxFactor: 0.5}, "min_factor"},
		{"negative period", pacer.LeakyConfig{Capacity: 1, Leak: 1, Period: -time.Second}, "period"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pacer.NewLeakyBucket(tc.c)
			checkInvalid(t, err, tc.field)
		})
	}
	b, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 1, Leak: 1})
	checkInvalid(t, b.SetFactor(0), "factor")
	checkInvalid(t, b.SetFactor(math.Inf(1)), "factor")
	_, err := b.Acquire(context.Background(), -1)
	checkInvalid(t, err, "n")
}

// asyncutils.buckets (Python) takes an ADJMAP without a row for small capacities and then
// never adapts them. Here it is rejected, as is one not descending.
func TestSeedBugAdjMapWithoutCatchAll(t *testing.T) {
	t.Parallel()
	noCatchAll := pacer.DefaultAdjMap()[:2]
	_, err := pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: 10, Leak: 1, AdjMap: noCatchAll})
	checkInvalid(t, err, "adjmap[1].min_cap")
	rows := pacer.DefaultAdjMap()
	rows[0], rows[1] = rows[1], rows[0]
	_, err = pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: 10, Leak: 1, AdjMap: rows})
	checkInvalid(t, err, "adjmap[1].min_cap")
	bounds := pacer.DefaultAdjMap()
	bounds[2].LBound = 0.8
	_, err = pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: 10, Leak: 1, AdjMap: bounds})
	checkInvalid(t, err, "adjmap[2].lbound")
}

// Each capacity picks the first row whose min_cap it reaches, and each band
// of that row moves the factor its own way.
func TestAdjMapTiersAndBands(t *testing.T) {
	t.Parallel()
	cases := []struct {
		capacity, ratio, want float64
	}{
		// row 256: 0.15, 1.1, 0.85, 0.9
		{300, 0.10, 1.1}, {300, 0.20, 1}, {300, 0.90, 0.9},
		// row 128: 0.23, 1.2, 0.77, 0.81
		{200, 0.20, 1.2}, {200, 0.50, 1}, {200, 0.80, 0.81},
		// catch-all row 0: 0.3, 1.4, 0.7, 0.73
		{10, 0.20, 1.4}, {10, 0.50, 1}, {20, 0.75, 0.73},
		// lbound itself belongs to the lower band (the level only falls
		// before the period ends, so ubound cannot be held exactly)
		{10, 0.30, 1.4}, {100, 0.71, 0.73},
		{256, 0.125, 1.1}, {255, 0.20, 1.2},
	}
	for _, tc := range cases {
		b := holdLevel(t, tc.capacity, tc.ratio)
		if got := b.FactorAt(t0.Add(tick)); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("capacity %v, fill %v: factor after one period = %v, want %v", tc.capacity, tc.ratio, got, tc.want)
		}
	}
}

func TestLeakyWaitReturnsTimeWaited(t *testing.T) {
	t.Parallel()
	b, clk := newLeaky(t, pacer.LeakyConfig{Capacity: 2, Leak: 10, Manual: true})
	b.TryAcquireAt(t0, 2)
	type result struct {
		d   time.Duration
		err error
	}
	ch := make(chan result, 1)
	go func() { d, err := b.Acquire(context.Background(), 1); ch <- result{d, err} }()
	clk.WaitTimers(1)
	clk.Advance(ms(100))
	r := <-ch
	if r.err != nil || r.d != ms(100) {
		t.Fatalf("Wait(1) = %v, %v; want 100ms, nil", r.d, r.err)
	}
	_, err := b.Acquire(context.Background(), 3)
	checkInvalid(t, err, "n")
}

func TestLeakyWaitAdaptsWhileWaiting(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// Full bucket, adaptive: the factor falls each period (ratio ≥ 0.7),
		// so a waiter's due time moves out as it waits.
		b, clk := newLeaky(t, pacer.LeakyConfig{Capacity: 1, Leak: 1})
		b.TryAcquireAt(t0, 1)
		ch := make(chan time.Duration, 1)
		go func() { d, _ := b.Acquire(context.Background(), 1); ch <- d }()
		for clk.Now().Sub(t0) < time.Minute {
			synctest.Wait() // the waiter has finished or sleeps on the clock
			select {
			case d := <-ch:
				// Level 1 leaks at 1 × factor, and the factor falls by 0.73 a
				// period while the level is ≥ 0.7: the wait is longer than
				// the 1s it would be at factor 1.
				if d <= time.Second {
					t.Fatalf("waited %v: the falling factor should make it wait longer than 1s", d)
				}
				return
			default:
			}
			next, ok := clk.Next()
			if !ok {
				t.Fatal("the waiter is blocked but sleeps on no timer")
			}
			clk.Set(next)
		}
		t.Fatal("waiter never finished")
	})
}

func TestLeakyFactorLocked(t *testing.T) {
	t.Parallel()
	b, _ := newLeaky(t, pacer.LeakyConfig{Capacity: 1, Leak: 1, FactorLocked: true})
	if err := b.SetFactor(2); !errors.Is(err, pacer.ErrFactorNotSettable) {
		t.Fatalf("SetFactor on a locked bucket = %v, want ErrFactorNotSettable", err)
	}
	b.ResetFactor()
	if f := b.Factor(); f != 1 {
		t.Fatalf("Factor() = %v after ResetFactor, want 1", f)
	}
}

func TestLeakyClose(t *testing.T) {
	t.Parallel()
	b, clk := newLeaky(t, pacer.LeakyConfig{Capacity: 1, Leak: 1, Manual: true})
	b.TryAcquireAt(t0, 1)
	ch := make(chan error, 1)
	go func() { _, err := b.Acquire(context.Background(), 1); ch <- err }()
	clk.WaitTimers(1)
	b.Close()
	if err := <-ch; !errors.Is(err, pacer.ErrClosed) {
		t.Fatalf("Acquire after Close = %v, want ErrClosed", err)
	}
	if b.TryAcquire(1) {
		t.Fatal("TryAcquire succeeded on a closed bucket")
	}
}
