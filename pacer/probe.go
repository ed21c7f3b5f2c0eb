package pacer

import (
	"context"
	"time"
)

// Backlog is what a queue reports about the work waiting in it.
type Backlog struct {
	// Pending is the number of jobs ready to run and not yet taken.
	Pending int64
	// OldestAge is how long the oldest pending job has waited; zero when
	// the queue is empty or the source cannot tell.
	OldestAge time.Duration
}

// Probe reads a queue's backlog. The Pacer's controller calls it once per
// sample period from one goroutine; an error keeps the last factor and is
// counted in Stats.ProbeErrors. Adapters implement it for their queue.
type Probe interface {
	Backlog(ctx context.Context) (Backlog, error)
}

// ProbeFunc adapts a function to the Probe interface.
type ProbeFunc func(ctx context.Context) (Backlog, error)

// Backlog calls f(ctx).
func (f ProbeFunc) Backlog(ctx context.Context) (Backlog, error) { return f(ctx) }

// Limiter is an extra limit a Pacer obeys after its own ceiling, such as a
// limit shared by a whole fleet of workers (package
// adapters/redisbucket). Wait blocks until n jobs may start, or returns
// ctx.Err() (or another error) without admitting them. It must be safe for
// concurrent use.
type Limiter interface {
	Wait(ctx context.Context, n int) error
}

// Refunder is implemented by a Limiter that can take back admissions its
// Wait gave for jobs that never ran. Permit.Cancel and CancelN call it, so
// a permit given back returns to the shared limit too, not only to the
// Pacer's own pace.
type Refunder interface {
	Refund(n int)
}
