// Package sink holds what pacer's worker CLI dispatches a job to: a
// command run per job (Exec), an HTTP endpoint (HTTP) or the log (Log).
//
// A Sink's outcome is what the pacer learns from: nil is success; an error
// that wraps a *pacer.Throttled (see pacer.Throttle) is pushback, which
// lowers the pace to just under the good rate (a long retry-after or a
// storm also pauses the worker); the job is retried after its
// retry-after. A refused connection and a timeout are pushback too: the
// downstream is down or drowning. Any other
// error is a failure that the source retries, unless it wraps
// ErrPermanent.
package sink
