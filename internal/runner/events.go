package runner

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// loggedProbe is a worker's backlog probe that logs a failure once, at
// warn, when reads start failing, and once, at info, when they answer
// again, with the count of failed reads: the pacer counts them in
// Stats.ProbeErrors.
type loggedProbe struct {
	probe  pacer.Probe
	log    *slog.Logger
	worker string

	mu      sync.Mutex // guards failing, since, fails
	failing bool
	since   time.Time
	fails   int
}

func (l *loggedProbe) Backlog(ctx context.Context) (pacer.Backlog, error) {
	b, err := l.probe.Backlog(ctx)
	if errors.Is(ctx.Err(), context.Canceled) {
		return b, err // stopping: not the probe's failure (a timeout is)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil && !l.failing:
		l.failing, l.since, l.fails = true, time.Now(), 1
		l.log.Warn("backlog probe failed: the pace holds until it answers", "worker", l.worker, "err", err.Error())
	case err != nil:
		l.fails++
	case l.failing:
		l.failing = false
		l.log.Info("backlog probe answers again", "worker", l.worker, "failed_reads", l.fails,
			"for", time.Since(l.since).Round(time.Millisecond))
	}
	return b, err
}

// failEvery is the least time between two "jobs failing" lines of a
// worker.
const failEvery = 5 * time.Second

// failLog logs a worker's failed jobs at warn without a line per job: the
// first failure at once, then at most one line per failEvery with the
// count since the last line and the last error. Every failure is also a
// debug line.
type failLog struct {
	mu      sync.Mutex // guards the fields below
	last    time.Time  // of the last warn line
	n       int        // failures since it
	lastErr string
}

// failed records a failure and reports whether to log a warn line now,
// with the failures it sums up.
func (f *failLog) failed(err error, now time.Time) (n int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.lastErr = err.Error()
	if now.Sub(f.last) < failEvery {
		return 0, false
	}
	n, f.n, f.last = f.n, 0, now
	return n, true
}
