package pacer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/pacertest"
)

// A worker asks the Pacer before each job and reports how the job went. A
// 429 from the downstream cuts the pace and pauses dispatch once.
func Example() {
	clk := pacertest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // nil in production
	p, err := pacer.New(pacer.Config{Rate: 100, Burst: 5, Base: 20, BaseBurst: 5, Clock: clk})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	pm, err := p.Acquire(ctx, 1)
	if err != nil {
		panic(err)
	}
	pm.Done(nil) // the job succeeded

	pm, _ = p.Acquire(ctx, 1)
	clk.Advance(time.Second)
	pm.Done(pacer.Throttle(2*time.Second, errors.New("429 Too Many Requests")))

	st := p.Stats()
	fmt.Printf("dispatched %d, throttled %d, factor %.1f, paused for %v\n",
		st.Dispatched, st.Throttled, st.Factor, st.PausedUntil.Sub(clk.Now()))
	// Output: dispatched 2, throttled 1, factor 0.5, paused for 2s
}

// TryAcquire is the non-blocking fast path: a burst of 3, then one token every
// 100ms.
func ExampleTokenBucket_TryAcquireAt() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := pacer.NewTokenBucket(10, 3, pacertest.NewClock(start))
	for _, at := range []time.Duration{0, 0, 0, 0, 50 * time.Millisecond, 100 * time.Millisecond} {
		fmt.Println(at, b.TryAcquireAt(start.Add(at), 1))
	}
	// Output:
	// 0s true
	// 0s true
	// 0s true
	// 0s false
	// 50ms false
	// 100ms true
}

// Acquire returns how long it really waited; the ADJMAP of
// asyncutils.buckets (Python) adapts the factor once per period by the fill
// ratio.
func ExampleLeakyBucket() {
	clk := pacertest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, _ := pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: 10, Leak: 5, Clock: clk})
	fmt.Println(b.TryAcquire(10), b.TryAcquire(1)) // starts empty: 10 fit, then full
	clk.Advance(100 * time.Millisecond)            // one period: full (ratio ≥ 0.7) → factor × 0.73
	fmt.Printf("factor %.2f, level %.2f\n", b.Factor(), b.Level())
	// Output:
	// true false
	// factor 0.73, level 9.50
}
