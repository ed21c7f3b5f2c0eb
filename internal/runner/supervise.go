package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/pacer"
)

// Backoff of a worker's restarts: the first retry waits minBackoff, each
// next one twice as long, up to maxBackoff. A source that ran for longer
// than maxBackoff before it failed starts again from minBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// health is whether a worker's source runs, and since when it does not.
type health struct {
	mu        sync.Mutex // guards downSince, lastErr
	downSince time.Time  // zero while up
	lastErr   error
	restarts  atomic.Uint64
}

func (h *health) setDown(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downSince.IsZero() {
		h.downSince = time.Now()
	}
	h.lastErr = err
}

func (h *health) setUp() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.downSince, h.lastErr = time.Time{}, nil
}

// get returns since when the worker is down (zero: it is up) and why.
func (h *health) get() (time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downSince, h.lastErr
}

// probe is the worker's backlog probe as the pacer sees it: it reads
// whichever probe the source's last Connect returned, so a restart that
// recreates the source's consumer keeps the pacer's probe working.
type probe struct{ p atomic.Pointer[pacer.Probe] }

func (p *probe) set(pr pacer.Probe) { p.p.Store(&pr) }

func (p *probe) Backlog(ctx context.Context) (pacer.Backlog, error) {
	cur := p.p.Load()
	if cur == nil || *cur == nil {
		return pacer.Backlog{}, errors.New("no backlog probe: the source is reconnecting")
	}
	return (*cur).Backlog(ctx)
}

// connectTimeout bounds each Source.Connect.
const connectTimeout = 30 * time.Second

// supervise runs w's source until ctx ends. A source whose Run returns
// while ctx has not ended has failed for good: the worker is marked down
// (for /readyz, /status and /metrics) and Connect, which recreates what
// the source created (a JetStream consumer), and Run are tried again
// with backoff. If the worker cannot run again within recoverTimeout,
// supervise calls fail with the reason and returns.
func (r *Runner) supervise(ctx context.Context, w *runWorker, env plugin.Env, recoverTimeout time.Duration, fail func(error)) {
	backoff := minBackoff
	for {
		started := time.Now()
		err := w.src.Run(ctx, env)
		if ctx.Err() != nil {
			if err != nil {
				r.log.Error("source stopped", "worker", w.cfg.Name, "err", err)
			}
			return
		}
		if err == nil {
			err = errors.New("the source stopped without an error")
		}
		if time.Since(started) > maxBackoff {
			backoff = minBackoff
		}
		w.health.setDown(err)
		r.log.Error("worker down: its source failed; restarting it", "worker", w.cfg.Name, "err", err, "retry_in", backoff)
		for {
			since, last := w.health.get()
			left := recoverTimeout - time.Since(since)
			if left <= 0 {
				fail(fmt.Errorf("worker %q: down for %v (recover_timeout): %w", w.cfg.Name, recoverTimeout, last))
				return
			}
			if !sleep(ctx, min(backoff, left)) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			w.health.restarts.Add(1)
			cctx, cancel := context.WithTimeout(ctx, connectTimeout)
			pr, err := w.src.Connect(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				w.probe.set(pr)
				break
			}
			w.health.setDown(err)
			r.log.Warn("worker still down: reconnecting its source failed", "worker", w.cfg.Name, "err", err, "retry_in", backoff)
		}
		w.health.setUp()
		r.log.Info("worker recovered: its source runs again", "worker", w.cfg.Name, "restarts", w.health.restarts.Load())
	}
}
