package pacer

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrClosed is returned by waits on a bucket or Pacer that has been closed.
var ErrClosed = errors.New("pacer: closed")

// ErrInvalid is wrapped by every error about a bad argument or setting, so
// callers can test for it with errors.Is. Those errors are *FieldError.
var ErrInvalid = errors.New("pacer: invalid setting")

// ErrFactorNotSettable is returned by LeakyBucket.SetFactor when the bucket
// was made with LeakyConfig.FactorLocked set.
var ErrFactorNotSettable = errors.New("pacer: factor is not settable on this bucket")

// FieldError is the error for a bad setting or argument: it names the
// field, the value given and what is allowed, as in
//
//	pacer: rate: -1: want a number ≥ 1e-08 and ≤ 1e+09 per second
//
// errors.Is(err, ErrInvalid) holds for every FieldError, and errors.As
// finds it, so a config loader can point at the line that set Field. The
// core returns one for every bad field of Config, LeakyConfig,
// NewTokenBucket and CheckAdjMap, and the adapters for their own settings.
type FieldError struct {
	// Pkg names the package that checked the value, the message's prefix.
	// The default value, "", means "pacer".
	Pkg string
	// Field is the setting's name as its TOML key spells it ("rate",
	// "adjmap[1].lbound"), or the argument's or option's name.
	Field string
	// Value is the value given.
	Value any
	// Want says what is allowed.
	Want string
	// Err is the sentinel the error wraps. The default value, nil, means
	// ErrInvalid; an adapter may give its own, which must wrap ErrInvalid.
	Err error
}

// Error returns "pkg: field: value: want …".
func (e *FieldError) Error() string {
	pkg := e.Pkg
	if pkg == "" {
		pkg = "pacer"
	}
	return fmt.Sprintf("%s: %s: %v: want %s", pkg, e.Field, e.Value, e.Want)
}

// Unwrap returns Err, or ErrInvalid if Err is nil.
func (e *FieldError) Unwrap() error {
	if e.Err == nil {
		return ErrInvalid
	}
	return e.Err
}

func invalid(field string, v any, allowed string) error {
	return &FieldError{Field: field, Value: v, Want: allowed}
}

// positive checks that v is a finite number > 0.
func positive(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return invalid(field, v, "a number > 0")
	}
	return nil
}

// wholeJobs checks a burst: a whole number of jobs ≥ 1, so that the
// ceiling's "Burst + Rate × t" counts whole jobs.
func wholeJobs(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 1 || v != math.Trunc(v) || v > MaxRate {
		return invalid(field, v, "a whole number of jobs ≥ 1")
	}
	return nil
}

// checkRate checks a rate in tokens per second.
func checkRate(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < MinRate || v > MaxRate {
		return invalid(field, v, fmt.Sprintf("a number ≥ %g and ≤ %g per second", MinRate, float64(MaxRate)))
	}
	return nil
}

// MinRate is the smallest rate a bucket accepts, in tokens per second: one
// token per MaxFill. A slower bucket could not hold its MinCapacity.
const MinRate = 1 / MaxFill

// MinCapacity is the smallest capacity (burst) a bucket accepts, in
// tokens: a bucket must hold a whole job, or a wait for one would be
// taken in slivers that cost nothing and never add up.
const MinCapacity = 1

// checkCapacity checks a capacity (burst) in tokens.
func checkCapacity(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < MinCapacity {
		return invalid(field, v, fmt.Sprintf("a number ≥ %d (tokens)", MinCapacity))
	}
	return nil
}

// InFlightLimit is the largest Config.MaxInFlight: a cap above it is no
// cap at all, and the sources start a goroutine per permit they hold.
const InFlightLimit = 10000

// MinPeriod is the shortest Config.Period and LeakyConfig.Period: the
// controller probes the backlog once a period and a leaky bucket's waiter
// wakes to adapt once a period; a shorter one would only burn CPU and
// load the broker.
const MinPeriod = 10 * time.Millisecond

// MaxFill is the longest a bucket may take to fill from empty
// (capacity ÷ rate): about 3 years. Beyond it the schedule's 1/16 ns ticks
// would overflow.
const MaxFill = 1e8 // seconds

// checkFill checks that capacity ÷ rate is at most MaxFill.
func checkFill(rate, capacity float64) error {
	if capacity/rate > MaxFill {
		return invalid("capacity / rate", fmt.Sprintf("%g / %g = %gs", capacity, rate, capacity/rate), fmt.Sprintf("at most %gs to fill the bucket", float64(MaxFill)))
	}
	return nil
}

// checkAmount checks a number of tokens asked for: 0, nothing, is granted.
func checkAmount(n int) error {
	if n < 0 {
		return invalid("n", n, "an integer ≥ 0")
	}
	return nil
}
