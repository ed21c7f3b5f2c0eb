package pacer_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobpacer/pacer/pacer"
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
