package pacer_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// A worker asks the Pacer before each job and reports how the job went. A
// 429 lowers the pace to just under the good rate measured, and the queue
// goes on; a long retry-after pauses it.
func Example() {
	clk := testutil.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // nil in production
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
	b, _ := pacer.NewTokenBucket(10, 3, testutil.NewClock(start))
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
	clk := testutil.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, _ := pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: 10, Leak: 5, Clock: clk})
	fmt.Println(b.TryAcquire(10), b.TryAcquire(1)) // starts empty: 10 fit, then full
	clk.Advance(100 * time.Millisecond)            // one period: full (ratio ≥ 0.7) → factor × 0.73
	fmt.Printf("factor %.2f, level %.2f\n", b.Factor(), b.Level())
	// Output:
	// true false
	// factor 0.73, level 9.50
}

// A downstream that slows down instead of refusing: with LatencyAuto the
// pacer learns how many jobs it takes at once from their latency. Here
// every job takes 8ms on 4 servers behind a queue; the pacer starts at
// one job in flight and settles on about the 4 servers.
func ExampleConfig_latencyAuto() {
	clk := testutil.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // nil in production
	p, err := pacer.New(pacer.Config{Rate: 2000, Burst: 20, LatencyTarget: pacer.LatencyAuto, Clock: clk})
	if err != nil {
		panic(err)
	}
	type job struct {
		pm   *pacer.Permit
		done time.Duration
	}
	var (
		busy []job
		free [4]time.Duration // when each server is next free
		now  time.Duration
	)
	for now < 5*time.Second {
		clk.Advance(time.Millisecond)
		now += time.Millisecond
		keep := busy[:0]
		for _, j := range busy {
			if j.done <= now {
				j.pm.Done(nil)
			} else {
				keep = append(keep, j)
			}
		}
		busy = keep
		for len(busy) < 100 { // 100 workers with an endless backlog
			pm, ok := p.TryAcquire(1)
			if !ok {
				break
			}
			i := 0 // the server free soonest, FIFO
			for k := range free {
				if free[k] < free[i] {
					i = k
				}
			}
			free[i] = max(free[i], now) + 8*time.Millisecond
			busy = append(busy, job{pm, free[i]})
		}
	}
	st := p.Stats()
	fmt.Println("about the 4 servers:", st.ConcurrencyLimit >= 4 && st.ConcurrencyLimit <= 6)
	fmt.Println("no-load latency:", st.LatencyNoLoad.Round(time.Millisecond))
	// Output:
	// about the 4 servers: true
	// no-load latency: 8ms
}

// Advise obeys what the downstream advertises (RateLimit or
// X-RateLimit-Remaining and -Reset): with 10 calls left until a reset 1s
// away, the pace spreads them over the second and dispatch stops once
// they are used.
func ExamplePacer_Advise() {
	clk := testutil.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // nil in production
	p, err := pacer.New(pacer.Config{Rate: 1000, Burst: 1, Clock: clk})
	if err != nil {
		panic(err)
	}
	p.Advise(10, time.Second)
	n := 0
	for range 1000 { // one second
		clk.Advance(time.Millisecond)
		if pm, ok := p.TryAcquire(1); ok {
			n++
			pm.Done(nil)
		}
	}
	fmt.Println(n, "dispatched in the second")
	// Output: 10 dispatched in the second
}

// Every bad setting is a *FieldError naming the field, the value and what
// is allowed; errors.Is finds ErrInvalid in each, errors.As the field.
func ExampleFieldError() {
	_, err := pacer.New(pacer.Config{Rate: -1})
	fmt.Println(err)
	_, err = pacer.New(pacer.Config{Rate: 10, Base: 20})
	fmt.Println(err)
	var fe *pacer.FieldError
	fmt.Println(errors.Is(err, pacer.ErrInvalid), errors.As(err, &fe) && fe.Field == "base")
	// Output:
	// pacer: rate: -1: want a number ≥ 1e-08 and ≤ 1e+09 per second
	// pacer: base: 20: want ≤ rate (10): the ceiling caps the pace
	// true true
}
