package pacer

import (
	"errors"
	"fmt"
	"math"
)

// ErrClosed is returned by waits on a bucket or Pacer that has been closed.
var ErrClosed = errors.New("pacer: closed")

// ErrInvalid is wrapped by every error about a bad argument or setting, so
// callers can test for it with errors.Is.
var ErrInvalid = errors.New("invalid setting")

// ErrFactorNotSettable is returned by LeakyBucket.SetFactor when the bucket
// was made with FactorSettable false.
var ErrFactorNotSettable = errors.New("pacer: factor is not settable on this bucket")

func invalid(field string, v any, allowed string) error {
	return fmt.Errorf("pacer: %w: %s = %v, want %s", ErrInvalid, field, v, allowed)
}

// positive checks that v is a finite number > 0.
func positive(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return invalid(field, v, "a finite number > 0")
	}
	return nil
}

// checkRate checks a rate in tokens per second.
func checkRate(field string, v float64) error {
	if err := positive(field, v); err != nil {
		return err
	}
	if v > MaxRate {
		return invalid(field, v, fmt.Sprintf("at most %g per second", float64(MaxRate)))
	}
	return nil
}

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

// checkAmount checks a number of tokens asked for.
func checkAmount(n int) error {
	if n < 1 {
		return invalid("n", n, "an integer ≥ 1")
	}
	return nil
}
