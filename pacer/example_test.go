package pacer_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/pacertest"
)

// A worker asks the Pacer before each job and reports how the job went. A
// 429 lowers the pace to just under the good rate measured, and the queue
// goes on; a long retry-after pauses it.
func Example() {
	clk := pacertest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // nil in production
	p, err := pacer.New(pacer.Config{Rate: 100, Burst: 5, Clock: clk})
	if err != nil {
		panic(err)
	}
	for range 200 { // two seconds at 100 jobs a second, all good
		clk.Advance(10 * time.Millisecond)
		if pm, ok := p.TryAcquire(1); ok {
			pm.Done(nil)
		}
	}
	clk.Advance(10 * time.Millisecond)
	pm, _ := p.TryAcquire(1)
	pm.Done(pacer.Throttle(time.Second, errors.New("429 Too Many Requests")))
	st := p.Stats()
	fmt.Printf("pace %.0f/s (%s), capacity %.0f/s, paused %v\n", st.Pace, st.Reason, st.Capacity, !st.PausedUntil.IsZero())

	clk.Advance(10 * time.Millisecond)
	pm, _ = p.TryAcquire(1)
	pm.Done(pacer.Throttle(time.Minute, errors.New("429 Too Many Requests")))
	st = p.Stats()
	fmt.Printf("paused for %v\n", st.PausedUntil.Sub(clk.Now()))
	// Output:
	// pace 94/s (pushback), capacity 100/s, paused false
	// paused for 1m0s
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
