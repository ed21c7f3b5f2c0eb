package redisbucket

import (
	"github.com/jobpacer/pacer/adapters/internal/lease"
	"math"
	"testing"
)

// The timer of a wait on an empty local share (a rate near 0) saturates
// instead of wrapping negative.
func TestDurSaturates(t *testing.T) {
	for _, us := range []float64{1e12, 1e18, 1e300, math.Inf(1)} {
		if d := lease.Dur(us); d <= 0 {
			t.Errorf("dur(%g µs) = %v, want a positive wait", us, d)
		}
	}
}
