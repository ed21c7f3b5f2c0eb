package asynqpacer

import (
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/pacer"
)

// ErrRateLimited is matched (with errors.Is) by every *RateLimitError.
var ErrRateLimited = errors.New("asynqpacer: rate limited")

// RateLimitError is what Middleware returns, without running the handler,
// when a task cannot get its permit in time: the pacer's wait would not end
// before the task's deadline (less the HandlerTime option), or the pacer is
// closed. It is our own pace that says no, not the downstream, so it does
// not pause the pacer. IsFailure reports false for it and RetryDelay gives
// its RetryAfter, so Asynq retries the task later without counting a
// failure.
type RateLimitError struct {
	// Type is the task's type.
	Type string
	// RetryAfter is when the task should be tried again: the pacer's
	// estimated wait at the time it gave up.
	RetryAfter time.Duration
	// Err is the cause, if any (pacer.ErrClosed, context.DeadlineExceeded).
	Err error
}

// Error implements error.
func (e *RateLimitError) Error() string {
	s := fmt.Sprintf("asynqpacer: rate limited: task %q cannot get a permit before its deadline, retry after %v", e.Type, e.RetryAfter)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *RateLimitError) Unwrap() error { return e.Err }

// Is reports whether target is ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// rateLimited reports whether err is a rate-limit outcome, ours or the
// downstream's, and the retry-after it carries (zero if none).
func rateLimited(err error) (time.Duration, bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAfter, true
	}
	return pacer.IsThrottled(err)
}

// IsFailure reports whether err should count as a failure for Asynq: false
// for nil, a *RateLimitError and anything that is or wraps a
// *pacer.Throttled; true for any other error. Use it as asynq.Config's
// IsFailure, so a rate-limited task keeps its retry count and does not show
// in the queue's Failed statistics. (A task with no retries left, one
// enqueued with MaxRetry(0) say, is still archived on its first error of
// any kind: Asynq checks the retry count before IsFailure. The Requeue
// option puts such a task back into its queue instead.)
func IsFailure(err error) bool {
	if err == nil {
		return false
	}
	_, ok := rateLimited(err)
	return !ok
}

// RetryDelay is an asynq.RetryDelayFunc: for a rate-limited error (see
// IsFailure) it returns the retry-after the error carries, or
// pacer.DefaultRetryAfter if it carries none (Middleware gives every
// rate-limited error it returns its pacer's Config.DefaultRetryAfter, so
// that default is only for errors that did not pass through it); for any other error it returns
// asynq.DefaultRetryDelayFunc(n, err, t). Use it as asynq.Config's
// RetryDelayFunc. Asynq keeps retry times in whole Unix seconds and moves
// due tasks back to pending every Config.DelayedTaskCheckInterval (5 s by
// default), so a retry-after takes effect only to that resolution; the
// pacer's own pause is what holds this worker back for a pushback's exact
// retry-after.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	if d, ok := rateLimited(err); ok {
		if d <= 0 {
			return pacer.DefaultRetryAfter
		}
		return d
	}
	return asynq.DefaultRetryDelayFunc(n, err, t)
}
