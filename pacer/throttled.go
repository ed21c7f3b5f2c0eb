package pacer

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Throttled is the outcome of a job whose downstream pushed back: a 429 or
// 503 answer, a rate-limit error, an explicit retry-after. Passed to
// Permit.Done (directly or wrapped), it lowers the Pacer's pace, once for
// the whole pacer however many jobs report the same pushback. It pauses
// dispatch for RetryAfter only when RetryAfter is at least
// Config.PauseAfter or the throttled outcomes make a storm
// (Config.StormShare); otherwise the job waits its own retry-after and
// the others go on at the lower pace.
type Throttled struct {
	// RetryAfter is how long the downstream asked us to wait; zero means
	// it did not say, and the Pacer uses its DefaultRetryAfter.
	RetryAfter time.Duration
	// Err is the underlying error, if any.
	Err error
}

// Throttle returns a *Throttled error carrying retry-after d and cause err
// (which may be nil).
func Throttle(d time.Duration, err error) error { return &Throttled{RetryAfter: d, Err: err} }

// Error implements error.
func (t *Throttled) Error() string {
	if t.Err != nil {
		return fmt.Sprintf("pacer: throttled, retry after %v: %v", t.RetryAfter, t.Err)
	}
	return fmt.Sprintf("pacer: throttled, retry after %v", t.RetryAfter)
}

// Unwrap returns the underlying error.
func (t *Throttled) Unwrap() error { return t.Err }

// IsThrottled reports whether err is or wraps a *Throttled, and its
// retry-after.
func IsThrottled(err error) (retryAfter time.Duration, ok bool) {
	var t *Throttled
	if errors.As(err, &t) {
		return t.RetryAfter, true
	}
	return 0, false
}

// Unavailable reports whether err says that the downstream is down or
// drowning rather than that the job is bad: a refused connection
// (ECONNREFUSED), or a timeout (an error with a Timeout method that
// reports true, as net.Error has and context.DeadlineExceeded does). Sinks and adapters report such an
// outcome as Throttled, so that the pace drops instead of spending
// attempts at full speed on a downstream that cannot answer, and probes
// back up once it does; an adapter does so only while the handler's own
// context has not ended, since a timeout of its own is not the
// downstream's.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
