package asynqpacer

import (
	"math"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Bounds and slack of ServerConcurrency.
const (
	// ConcurrencySlack is the time of work at the pace that ServerConcurrency
	// keeps leased ahead: Asynq dequeues one task at a time, and a stall
	// of that loop (Redis, the Go scheduler, a busy machine) longer than
	// the tasks waiting for a permit can cover loses permits.
	ConcurrencySlack = 50 * time.Millisecond
	// MinConcurrency and MaxConcurrency bound what ServerConcurrency returns.
	MinConcurrency = 10
	MaxConcurrency = 1000
)

// ServerConcurrency returns the asynq.Config.Concurrency for a server gated by
// Middleware at rate tasks per second whose handlers take about work each:
// rate × (work + ConcurrencySlack), rounded up, within [MinConcurrency,
// MaxConcurrency]; MaxConcurrency for a rate that is not a positive finite
// number below 1e9 (unlimited). A task waiting for its permit holds one of
// these slots (its lease kept by Asynq's heartbeat), so too few slots cap
// the pace below the rate (docs/asynq.md has the figures).
// ServerConcurrency is safe for concurrent use.
func ServerConcurrency(rate float64, work time.Duration) int {
	if math.IsNaN(rate) || rate <= 0 || rate >= pacer.MaxRate {
		return MaxConcurrency
	}
	n := math.Ceil(rate * (max(work, 0) + ConcurrencySlack).Seconds())
	return int(min(max(n, MinConcurrency), MaxConcurrency))
}
