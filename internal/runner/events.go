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

// cutSummaryEvery is how often cutSummary sums up a worker's cuts in one
// INFO line while they go on.
const cutSummaryEvery = time.Minute

// cutSummary is the slog.Handler of a worker's pacer (Config.Logger). At
// a downstream's limit the pace and the concurrency limit are cut every
// second or two, and that is the normal state: the first cut after a quiet
// minute is an INFO line as package pacer writes it; the cuts after it are
// DEBUG lines, counted, and summed up in one INFO line ("pacer: pace
// lowered (summary)", with the count and the last cut's numbers) at the
// first cut a minute or more after the last INFO line, and when the run
// stops. Every other record passes as it is. Times are the records' own
// (the pacer's clock).
type cutSummary struct {
	h     slog.Handler
	state *cutState
}

type cutState struct {
	mu    sync.Mutex
	kinds map[string]*cutKind // by message
}

// cutKind is the state of one message's cuts.
type cutKind struct {
	quietUntil time.Time   // a cut before this is summed up, not an INFO line
	since      time.Time   // of the last INFO line
	n          int         // cuts since, summed up
	last       slog.Record // the last cut summed up
	h          slog.Handler
}

// cutMessages are the messages cutSummary sums up.
var cutMessages = map[string]bool{"pacer: pace lowered": true, "pacer: concurrency limit lowered": true}

func newCutSummary(h slog.Handler) *cutSummary {
	return &cutSummary{h: h, state: &cutState{kinds: map[string]*cutKind{}}}
}

func (c *cutSummary) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }

func (c *cutSummary) WithAttrs(as []slog.Attr) slog.Handler {
	return &cutSummary{h: c.h.WithAttrs(as), state: c.state}
}

func (c *cutSummary) WithGroup(name string) slog.Handler {
	return &cutSummary{h: c.h.WithGroup(name), state: c.state}
}

func (c *cutSummary) Handle(ctx context.Context, r slog.Record) error {
	if !cutMessages[r.Message] || r.Level != slog.LevelInfo {
		return c.h.Handle(ctx, r)
	}
	cuts := 1
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "more_cuts" {
			cuts += int(a.Value.Int64())
		}
		return true
	})
	s := c.state
	s.mu.Lock()
	k := s.kinds[r.Message]
	if k == nil {
		k = &cutKind{}
		s.kinds[r.Message] = k
	}
	var out []slog.Record
	switch {
	case !r.Time.Before(k.quietUntil) && k.n == 0:
		// The first cut after a quiet minute: as it is.
		k.since, k.quietUntil = r.Time, r.Time.Add(cutSummaryEvery)
		out = append(out, r)
	case !r.Time.Before(k.quietUntil):
		// Still cutting a minute on: the summary, and this cut in the next.
		out = append(out, k.summary(r.Time))
		k.since, k.quietUntil = r.Time, r.Time.Add(cutSummaryEvery)
		fallthrough
	default:
		k.n += cuts
		k.last, k.h = r.Clone(), c.h
		if c.h.Enabled(ctx, slog.LevelDebug) {
			d := r.Clone()
			d.Level = slog.LevelDebug
			out = append(out, d)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, o := range out {
		errs = append(errs, c.h.Handle(ctx, o))
	}
	return errors.Join(errs...)
}

// summary returns the INFO line of the k.n cuts since k.since, at now, and
// resets the count. It requires the state's mu held.
func (k *cutKind) summary(now time.Time) slog.Record {
	r := slog.NewRecord(now, slog.LevelInfo, k.last.Message+" (summary)", 0)
	r.AddAttrs(slog.Int("cuts", k.n), slog.Duration("in", now.Sub(k.since).Round(time.Second)),
		slog.String("note", "at the downstream's limit cuts are the normal state; each is a debug line"))
	k.last.Attrs(func(a slog.Attr) bool {
		if a.Key != "more_cuts" {
			r.AddAttrs(slog.Attr{Key: "last_" + a.Key, Value: a.Value})
		}
		return true
	})
	k.n = 0
	return r
}

// flush writes the summary of the cuts not summed up yet, at now.
func (c *cutSummary) flush(now time.Time) {
	s := c.state
	s.mu.Lock()
	var out []slog.Record
	var hs []slog.Handler
	for _, msg := range []string{"pacer: pace lowered", "pacer: concurrency limit lowered"} {
		if k := s.kinds[msg]; k != nil && k.n > 0 {
			out, hs = append(out, k.summary(now)), append(hs, k.h)
			k.quietUntil = time.Time{}
		}
	}
	s.mu.Unlock()
	for i, r := range out {
		_ = hs[i].Handle(context.Background(), r)
	}
}
