package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Store holds a fleet's shared schedule: the one place a fleet's state
// lives, changed atomically, on the store's own clock. redisbucket's store
// is a Lua script; natsbucket's a JetStream key-value entry changed by
// compare-and-set. Times are the store's, in µs.
//
// The schedule is a GCRA: "zero" is the instant at which the bucket was,
// or will be, empty. A take of k tokens hands out the k slots after
// max(zero, now − Burst×cost), one cost = 1e6/Rate apart, and moves zero
// past them; slots may lie up to ahead in the future. A return moves zero
// back over the tail of the caller's own take (by m slots, not under
// now − Burst×cost), if nothing was taken after it: the stored zero still
// reads exactly end. When the stored rate or burst differ from the
// caller's, the bucket is first settled under the caller's values (its
// balance kept), and a return is not applied.
type Store interface {
	// Take leases up to want slots (want 0 only checks in), records the
	// worker as seen now and forgets workers unseen for a.Window µs.
	Take(ctx context.Context, a Args, want int, ahead float64) (Reply, error)
	// Return gives back m slots ending at end (a Reply.Zero of this
	// worker's), if still the tail; leaving also forgets the worker.
	// Reply.K is 1 if the return was applied, else 0.
	Return(ctx context.Context, a Args, end string, m int, leaving bool) (Reply, error)
}

// Args are the arguments of every store call.
type Args struct {
	Rate, Burst float64
	Worker      string  // this worker's id
	Window      float64 // µs: a worker unseen this long no longer counts
}

// Reply is a store's answer, times in the store's µs.
type Reply struct {
	K       int     // tokens granted (Take), or 1 if the return was applied
	Z0      float64 // the granted slots are due at Z0 + i×cost, i = 1..K
	Start   string  // Z0 exactly as stored
	Zero    string  // zero after the call, exactly as stored
	Now     float64 // the store's time
	Workers int     // workers seen within the window
	Retry   float64 // Take of nothing granted: how long until a slot may be had
}

// Config is a Bucket's settings, as an adapter's Config gives them.
type Config struct {
	Pkg    string // the adapter's name, in errors and logs: "redisbucket"
	Server string // the store's name in logs and errors: "Redis", "NATS"

	Key             string
	Rate, Burst     float64
	ExpectedWorkers int
	LeaseTime       time.Duration
	RetryInterval   time.Duration
	Timeout         time.Duration
	Logger          *slog.Logger
	Clock           pacer.Clock

	// ID is this worker's id in the store; "" means a new WorkerID().
	ID string

	// ErrClosed is what Wait returns after Close.
	ErrClosed error
	// Refused reports whether a store error means the store refuses the
	// bucket (New fails, the fallback logs an error), not that it is away.
	Refused func(error) bool
}

// Default values and bounds shared by the adapters' Configs.
const (
	DefaultLeaseTime     = 100 * time.Millisecond
	MinLeaseTime         = time.Millisecond
	MaxLeaseTime         = 10 * time.Second
	DefaultRetryInterval = 500 * time.Millisecond
	MinRetryInterval     = 10 * time.Millisecond
	DefaultTimeout       = 250 * time.Millisecond
	MinTimeout           = time.Millisecond
	MaxExpectedWorkers   = 10000
)

func (c *Config) invalid(field string, v any, allowed string) error {
	return &pacer.FieldError{Pkg: c.Pkg, Field: field, Value: v, Want: allowed}
}

// CheckRate checks a fleet rate given as field.
func (c *Config) CheckRate(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < pacer.MinRate || v > pacer.MaxRate {
		return c.invalid(field, v, fmt.Sprintf("a number in [%g, %g] (jobs per second)", pacer.MinRate, float64(pacer.MaxRate)))
	}
	return nil
}

// Fill checks c's common fields and applies their defaults, returning a
// *pacer.FieldError naming the first bad one.
func (c *Config) Fill() error {
	if c.Key == "" {
		return c.invalid("key", `""`, "a non-empty name shared by the workers of one fleet")
	}
	if err := c.CheckRate("rate", c.Rate); err != nil {
		return err
	}
	if c.Burst == 0 {
		c.Burst = pacer.DefaultBurst
	}
	if math.IsNaN(c.Burst) || math.IsInf(c.Burst, 0) || c.Burst < pacer.MinCapacity {
		return c.invalid("burst", c.Burst, fmt.Sprintf("a finite number ≥ %d (jobs)", pacer.MinCapacity))
	}
	if fill := c.Burst / c.Rate; fill > pacer.MaxFill {
		return c.invalid("burst / rate", fmt.Sprintf("%g / %g = %gs", c.Burst, c.Rate, fill), fmt.Sprintf("at most %gs to fill the bucket", float64(pacer.MaxFill)))
	}
	if c.ExpectedWorkers < 0 || c.ExpectedWorkers > MaxExpectedWorkers {
		return c.invalid("expected_workers", c.ExpectedWorkers, fmt.Sprintf("in [0, %d] (0: the count last seen in %s)", MaxExpectedWorkers, c.Server))
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	if c.LeaseTime < MinLeaseTime || c.LeaseTime > MaxLeaseTime {
		return c.invalid("lease_time", c.LeaseTime, fmt.Sprintf("in [%v, %v]", MinLeaseTime, MaxLeaseTime))
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.RetryInterval < MinRetryInterval {
		return c.invalid("retry_interval", c.RetryInterval, fmt.Sprintf("≥ %v", MinRetryInterval))
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < MinTimeout {
		return c.invalid("timeout", c.Timeout, fmt.Sprintf("≥ %v", MinTimeout))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = pacer.SystemClock()
	}
	if c.ID == "" {
		c.ID = WorkerID()
	}
	if c.ErrClosed == nil {
		c.ErrClosed = errors.New(c.Pkg + ": closed")
	}
	return nil
}
