// Package sink holds what pacer's worker CLI dispatches a job to: a
// command run per job (Exec), an HTTP endpoint (HTTP) or the log (Log).
//
// A Sink's outcome is what the pacer learns from: nil is success; an error
// that wraps a *pacer.Throttled (see pacer.Throttle) is pushback, which
// cuts the pace and pauses the worker once for its retry-after; any other
// error is a failure that the source retries, unless it wraps
// ErrPermanent.
package sink
