package asynqpacer_test

import (
	"math"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
)

func TestServerConcurrency(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		work time.Duration
		want int
	}{
		{100, 0, 10},                        // 5 slots of slack: the floor
		{1000, 0, 50},                       // 50ms of work at 1,000/s
		{5000, 0, 250},                      //
		{1000, 100 * time.Millisecond, 150}, // handlers of 100ms hold 100 more
		{30000, 0, 1000},                    // the cap
		{1e9, 0, 1000},                      // unlimited
		{0, 0, 1000},                        // not a rate: unlimited
		{math.NaN(), 0, 1000},
		{1000, -time.Second, 50}, // a negative work time counts as 0
	} {
		if got := asynqpacer.ServerConcurrency(tc.rate, tc.work); got != tc.want {
			t.Errorf("ServerConcurrency(%v, %v) = %d, want %d", tc.rate, tc.work, got, tc.want)
		}
	}
}
