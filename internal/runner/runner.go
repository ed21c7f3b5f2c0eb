package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/admin"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/fleet"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/pacer"
)

// RunOptions override a config for one run.
type RunOptions struct {
	// Demo, if > 0, runs the demo producer at this many jobs per second
	// per worker, whatever the config's [demo] says.
	Demo float64
	// Admin, if not empty, replaces the config's admin address.
	Admin string
}

// Runner runs the workers of a config. Make one with New; Run runs
// it once.
type Runner struct {
	log     *slog.Logger
	opts    RunOptions
	brokers *brokers.Brokers
	started time.Time

	mu      sync.Mutex // guards cfg, workers and the workers' cfg
	cfg     *config.File
	workers []*runWorker
	fleets  atomic.Pointer[fleet.Set] // the fleets the workers name; set by Run

	draining  atomic.Bool
	adminAddr atomic.Pointer[string]
	ready     chan struct{}
}

type runWorker struct {
	cfg   config.Worker
	p     *pacer.Pacer
	fleet *redisbucket.Bucket // the fleet's limit; nil: no fleet
	src   plugin.Source
	snk   sink.Sink
	rate  meter

	running atomic.Int64 // jobs in the sink now: the one "in flight"
	fails   failLog
}

// New returns a Runner for f, a config from plugin.Load.
func New(f *config.File, log *slog.Logger, opts RunOptions) *Runner {
	if log == nil {
		log = slog.Default()
	}
	r := &Runner{log: log, opts: opts, cfg: f, started: time.Now(), ready: make(chan struct{})}
	r.brokers = brokers.New(f.Redis, f.NATS, log)
	return r
}

// Ready is closed once every worker runs and the admin server listens.
func (r *Runner) Ready() <-chan struct{} { return r.ready }

// AdminAddr returns the address the admin server listens on, or "".
func (r *Runner) AdminAddr() string {
	if p := r.adminAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run joins the fleets the workers name (one shared limit per fleet, held
// in Redis), connects the sources, starts the workers, the admin server
// and the demo producer, and runs until ctx ends. Then it drains: the
// sources stop taking jobs and wait for the jobs in flight (at most the
// config's drain_timeout; jobs not finished go back to their broker), the
// fleets give back the tokens they leased and did not use, and Run
// returns nil. It returns an error if a worker or a fleet cannot start.
func (r *Runner) Run(ctx context.Context) error {
	defer r.brokers.Close()
	cfg := r.cfg
	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()

	// The admin port first: a second pacer run on the same config fails
	// here, before it starts any broker or joins any fleet.
	if addr := cmp.Or(r.opts.Admin, cfg.Admin); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("admin address %s is in use (another pacer run?): pick another with --admin HOST:PORT, PACER_ADMIN or admin = \"HOST:PORT\" in the config (port 0: any free port; \"\" turns the admin server off)", addr)
			}
			return fmt.Errorf("admin address %s: %w", addr, err)
		}
		bound := ln.Addr().String()
		r.adminAddr.Store(&bound)
		srv := &http.Server{Handler: admin.Handler(r.Status), ReadHeaderTimeout: 5 * time.Second}
		bgWG.Add(1)
		go func() { defer bgWG.Done(); _ = srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		r.log.Info("admin listening", "addr", bound, "metrics", "http://"+bound+"/metrics", "status", "http://"+bound+"/status")
	}

	fleets, err := fleet.Open(cfg, r.brokers.RedisAddr, r.log)
	if err != nil {
		return err
	}
	r.fleets.Store(fleets)
	defer fleets.Close() // before the brokers: the embedded Redis may hold them
	for i := range cfg.Workers {
		wc := cfg.Workers[i]
		w := &runWorker{cfg: wc, src: wc.Source.Built.(plugin.Source), snk: wc.Sink.Built.(sink.Sink)}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if u, ok := w.src.(brokers.User); ok {
			u.UseBrokers(r.brokers)
		}
		probe, err := w.src.Connect(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("worker %q: %w", wc.Name, err)
		}
		pc := wc.Pacer()
		if probe != nil {
			pc.Probe = &loggedProbe{probe: probe, log: r.log, worker: wc.Name}
		}
		if wc.Fleet != "" {
			w.fleet = fleets.Bucket(wc.Fleet)
			pc.Limiter = w.fleet
		}
		if w.p, err = pacer.New(pc); err != nil {
			return fmt.Errorf("worker %q: %w", wc.Name, err)
		}
		r.mu.Lock()
		r.workers = append(r.workers, w)
		r.mu.Unlock()
	}

	var srcWG sync.WaitGroup
	for _, w := range r.workers {
		bgWG.Add(3)
		go func() { defer bgWG.Done(); _ = w.p.Run(bg) }()
		go func() { defer bgWG.Done(); w.rate.run(bg, w.p) }()
		go func() { defer bgWG.Done(); r.watch(bg, w) }()
		env := plugin.Env{
			Worker: w.cfg.Name, Pacer: w.p, Log: r.log, DrainTimeout: cfg.DrainTimeout.D(),
			MaxInFlight: w.cfg.MaxInFlight, Handle: r.handler(w),
		}
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			if err := w.src.Run(ctx, env); err != nil {
				r.log.Error("source stopped", "worker", w.cfg.Name, "err", err)
			}
		}()
		r.log.Info("worker started", "worker", w.cfg.Name, "source", w.cfg.Source.Kind(), "sink", w.cfg.Sink.Kind(),
			"rate", w.cfg.Settings.Rate, "base", w.cfg.Settings.Base, "max_in_flight", w.cfg.MaxInFlight, "fleet", w.cfg.Fleet)
	}
	if demo := cmp.Or(r.opts.Demo, cfg.Demo.Rate); demo > 0 {
		for _, w := range r.workers {
			if p, ok := plugin.As[plugin.Producer](w.src); ok {
				srcWG.Add(1)
				go func() { defer srcWG.Done(); r.demo(ctx, w.cfg.Name, p, demo, cfg.Demo.Payload) }()
			}
		}
	}
	if every := cfg.StatusEvery.D(); every > 0 {
		bgWG.Add(1)
		go func() { defer bgWG.Done(); r.statusLog(bg, every) }()
	}
	close(r.ready)
	<-ctx.Done()
	r.draining.Store(true)
	r.log.Info("draining: taking no new jobs, waiting for jobs in flight", "timeout", cfg.DrainTimeout.D())
	srcWG.Wait()
	for _, w := range r.workers {
		w.p.Close()
	}
	// The same counters as the status line, /status and /metrics.
	for _, ws := range r.Status().Workers {
		r.log.Info("stopped", "worker", ws.Name, "dispatched", ws.Dispatched, "done", ws.Succeeded,
			"failed", ws.Failed, "throttled", ws.Throttled, "dropped", ws.Dropped, "in_flight", ws.InFlight)
	}
	return nil
}

// handler returns the Env.Handle of w: the sink, under a context that
// the drain does not cancel, with the outcome logged.
func (r *Runner) handler(w *runWorker) func(sink.Job) error {
	return func(j sink.Job) error {
		w.running.Add(1)
		out := w.snk.Handle(context.Background(), j)
		w.running.Add(-1)
		if out != nil {
			if d, ok := pacer.IsThrottled(out); ok {
				r.log.Debug("job throttled", "worker", w.cfg.Name, "id", j.ID, "retry_after", d, "err", out)
			} else {
				r.log.Debug("job failed", "worker", w.cfg.Name, "id", j.ID, "attempt", j.Attempt, "err", out)
				if n, ok := w.fails.failed(out, time.Now()); ok {
					r.log.Warn("jobs failing", "worker", w.cfg.Name, "failed", n,
						"last_id", j.ID, "attempt", j.Attempt, "err", out.Error())
				}
			}
		} else {
			r.log.Debug("job done", "worker", w.cfg.Name, "id", j.ID, "attempt", j.Attempt)
		}
		return out
	}
}

func (r *Runner) statusLog(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := r.Status()
		for _, ws := range st.Workers {
			r.log.Info("status", "worker", ws.Name, "pace", round(ws.Pace), "done_per_s", round(ws.Measured),
				"factor", round(ws.Factor), "backlog", ws.Backlog, "in_flight", ws.InFlight,
				"done", ws.Succeeded, "failed", ws.Failed, "throttled", ws.Throttled, "dropped", ws.Dropped)
		}
		for _, fs := range st.Fleets {
			r.log.Info("status", "fleet", fs.Name, "mode", fs.Mode, "rate", fs.Rate, "processes", fs.Processes,
				"dispatched", fs.Dispatched, "redis_calls", fs.RedisCalls, "fallbacks", fs.Fallbacks)
		}
	}
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
