package pacer_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// Settings that are valid in type but absurd are refused with their
// range: each once made a blocking call spin or a process unstoppable.
func TestAbsurdSettingsRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		err   func() error
		field string
	}{
		{"a capacity of 1e-300 tokens", func() error { _, err := pacer.NewTokenBucket(1e9, 1e-300, nil); return err }, "capacity"},
		{"a rate of 1e-300 per second", func() error { _, err := pacer.NewTokenBucket(1e-300, 1, nil); return err }, "rate"},
		{"a leaky capacity below one token", func() error {
			_, err := pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: 0.5, Leak: 1})
			return err
		}, "capacity"},
		{"a burst below one job", func() error { _, err := pacer.New(pacer.Config{Rate: 10, Burst: 1e-300}); return err }, "burst"},
		{"max_in_flight of MaxInt64", func() error {
			_, err := pacer.New(pacer.Config{Rate: 10, MaxInFlight: 1<<63 - 1})
			return err
		}, "max_in_flight"},
		{"a period of 1ns", func() error { _, err := pacer.New(pacer.Config{Rate: 10, Period: time.Nanosecond}); return err }, "period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			checkInvalid(t, err, tt.field)
			var fe *pacer.FieldError
			if errors.As(err, &fe); fe.Want == "" {
				t.Fatalf("error %q does not say what is allowed", err)
			}
		})
	}
	if _, err := pacer.New(pacer.Config{Rate: 10, MaxInFlight: pacer.InFlightLimit, Period: pacer.MinPeriod}); err != nil {
		t.Fatalf("New at the bounds (max_in_flight %d, period %v): %v", pacer.InFlightLimit, pacer.MinPeriod, err)
	}
}

// The slowest bucket there is waits without spinning and gives up when
// its context ends: under synctest, a spinning wait would never let the
// bubble's clock reach the deadline.
func TestTinyRateHonoursContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, err := pacer.NewTokenBucket(pacer.MinRate, pacer.MinCapacity, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !b.TryAcquire(1) {
			t.Fatal("TryAcquire(1) on a full bucket failed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := b.Acquire(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire(1) on an empty bucket at %g/s = %v, want %v", pacer.MinRate, err, context.DeadlineExceeded)
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("Acquire returned after %v, want the context's 1s", got)
		}
		// A take above the capacity, in chunks, honours its context too.
		ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		if err := b.Acquire(ctx2, 1<<40); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire(1<<40) = %v, want %v", err, context.DeadlineExceeded)
		}
	})
}

// stallClock is a fake clock on which a goroutine is descheduled at each
// time read while stall is set: stall runs there (as other goroutines
// would), then the read goes on.
type stallClock struct {
	*testutil.Clock
	stall func()
}

func (c *stallClock) Now() time.Time {
	if f := c.stall; f != nil {
		c.stall = nil
		f()
		c.stall = f
	}
	return c.Clock.Now()
}

// SetBase never lets the pace pass the ceiling, even for a moment: with
// Rate 100, Base 10 and factor 10, SetBase(100) must not run the bucket at
// 100 × 10 = 1000/s between its steps. Whenever SetBase reads the clock,
// another caller takes all it can for a second, 10ms at a time; no window
// may hold more than Burst + Rate × its length.
func TestSetBaseNeverPassesTheCeiling(t *testing.T) {
	t.Parallel()
	const rate, burst = 100, 5
	clk := &stallClock{Clock: testutil.NewClock(t0)}
	q := &queue{}
	q.pending.Store(1 << 40)
	p, err := pacer.New(pacer.Config{Rate: rate, Base: 10, Burst: burst, BacklogHigh: 1, Probe: q, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		p.Step(context.Background())
	}
	if st := p.Stats(); st.Pace != rate {
		t.Fatalf("deep backlog: pace %v, want the ceiling %v", st.Pace, float64(rate))
	}
	start := clk.Clock.Now()
	var taken int
	drain := func() {
		for range 100 {
			clk.Clock.Advance(10 * time.Millisecond)
			for {
				if _, ok := p.TryAcquire(1); !ok {
					break
				}
				taken++
			}
		}
	}
	clk.stall = drain
	err = p.SetBase(rate)
	clk.stall = nil
	if err != nil {
		t.Fatal(err)
	}
	elapsed := clk.Clock.Now().Sub(start)
	if limit := burst + rate*elapsed.Seconds(); float64(taken) > limit {
		t.Fatalf("%d permits in %v around SetBase(%v), ceiling allows %v", taken, elapsed, float64(rate), limit)
	}
	t.Logf("%d permits in %v around SetBase", taken, elapsed)
}
