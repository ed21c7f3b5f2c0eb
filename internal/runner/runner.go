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

	hard     context.Context // the sinks' context, set by Run
	calls    calls           // sink calls running
	draining atomic.Bool
	ready    chan struct{}
}

type runWorker struct {
	cfg    config.Worker
	p      *pacer.Pacer
	probe  probe       // what the pacer probes: the source's current probe
	health health      // whether the source runs
	fleet  fleet.Limit // the fleet's limit; nil: no fleet
	src    plugin.Source
	snk    sink.Sink
	hist   history // a sample a second, for /samples and the measured pace

	cuts    *cutSummary  // the pacer's log: its cuts summed up
	running atomic.Int64 // jobs in the sink now: the one "in flight"
	fails   failLog
}

// New returns a Runner for f, a config from plugin.Load.
func New(f *config.File, log *slog.Logger, opts RunOptions) *Runner {
	if log == nil {
		log = slog.Default()
	}
	r := &Runner{log: log, opts: opts, cfg: f, started: time.Now(), ready: make(chan struct{})}
	r.brokers = brokers.New(f.Redis, f.NATS, log).InFile(f)
	return r
}

// Ready is closed once every worker runs and the admin server listens.
func (r *Runner) Ready() <-chan struct{} { return r.ready }

// Run joins the fleets the workers name (one shared limit per fleet, held
// in Redis), connects the sources, starts the workers, the admin server
// and the demo producer, and runs until ctx ends. A worker whose source
// fails is restarted with backoff (see supervise); if one cannot run
// again within the config's recover_timeout, the run stops as if ctx had
// ended and Run returns the reason. Then it drains: the sources stop
// taking jobs and wait for the jobs in flight (at most drain_timeout;
// jobs not finished go back to their broker); a job's sink context ends
// killDelay later (an exec command is killed with its process group), and
// Run returns at most stopMargin after that, whatever a source still
// does. The fleets give back the tokens they leased and did not use. Run
// returns an error if a worker or a fleet cannot start.
func (r *Runner) Run(ctx context.Context) error {
	defer r.brokers.Close()
	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()

	// The admin port first: a second pacer run on the same config fails
	// here, before it starts any broker or joins any fleet.
	shutdownAdmin, err := r.serveAdmin()
	if err != nil {
		return err
	}
	defer shutdownAdmin()

	fleets, err := fleet.Open(r.cfg, r.brokers, r.log)
	if err != nil {
		return err
	}
	r.fleets.Store(fleets)
	defer fleets.Close() // before the brokers: the embedded Redis may hold them
	for i := range r.cfg.Workers {
		w, err := r.newWorker(ctx, r.cfg.Workers[i], fleets)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.workers = append(r.workers, w)
		r.mu.Unlock()
	}

	// The sources run under run, which ends with ctx or when a worker
	// cannot recover; the sinks run under hard, which ends drain_timeout
	// after that (a command still running is killed, its job handed back
	// to the broker as not done).
	run, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	hard, kill := context.WithCancel(context.Background())
	defer kill()
	r.hard = hard
	var srcWG sync.WaitGroup
	r.launch(run, stop, bg, &bgWG, &srcWG)
	close(r.ready)
	<-run.Done()
	failed := context.Cause(run)
	if ctx.Err() != nil {
		failed = nil
	}
	r.drain(&srcWG, kill)
	return failed
}

// serveAdmin starts the admin server on the admin address, if there is
// one, and returns the function that shuts it down.
func (r *Runner) serveAdmin() (shutdown func(), err error) {
	cfg := r.cfg
	addr := cmp.Or(r.opts.Admin, cfg.Admin)
	if addr == "" {
		return func() {}, nil
	}
	if cfg.AdminPprof && !config.LoopbackAddr(addr) {
		return nil, fmt.Errorf("admin address %s: admin_pprof = true serves /debug/pprof/ on a loopback address only (such as %s): bind the admin server to 127.0.0.1, [::1] or localhost, or leave admin_pprof out", addr, config.DefaultAdmin)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("admin address %s is in use (another pacer run?): pick another with --admin HOST:PORT, PACER_ADMIN or admin = \"HOST:PORT\" in the config (port 0: any free port; \"\" turns the admin server off)", addr)
		}
		return nil, fmt.Errorf("admin address %s: %w", addr, err)
	}
	bound := ln.Addr().String()
	h := admin.Handler(r.Status, r.Samples)
	if cfg.AdminPprof {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.Handle("/debug/pprof/", admin.Pprof())
		h = mux
	}
	srv := admin.Serve(ln, h, r.Readiness)
	r.log.Info("admin listening", "addr", bound, "metrics", "http://"+bound+"/metrics", "status", "http://"+bound+"/status", "readyz", "http://"+bound+"/readyz", "dashboard", "http://"+bound+"/")
	if cfg.AdminPprof {
		r.log.Info("admin pprof", "pprof", "http://"+bound+"/debug/pprof/")
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// newWorker connects the source of worker wc (30 s at most) and makes its
// pacer: the source's probe, the cut summary as its logger, the fleet's
// limit.
func (r *Runner) newWorker(ctx context.Context, wc config.Worker, fleets *fleet.Set) (*runWorker, error) {
	w := &runWorker{cfg: wc, src: wc.Source.Built.(plugin.Source), snk: wc.Sink.Built.(sink.Sink)}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if u, ok := w.src.(brokers.User); ok {
		u.UseBrokers(r.brokers)
	}
	probe, err := w.src.Connect(cctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("worker %q: %w", wc.Name, err)
	}
	pc := wc.Pacer()
	if _, ok := w.src.(plugin.HandlerPool); ok && pc.LatencyTarget == 0 {
		// max_in_flight is the source's pool of handlers: in the
		// pacer it would count the jobs still being fetched too,
		// and fewer than max_in_flight would run.
		pc.MaxInFlight = 0
	}
	if probe != nil {
		w.probe.set(probe)
		pc.Probe = &loggedProbe{probe: &w.probe, log: r.log, worker: wc.Name}
	}
	// One INFO line per pause, and per pace cut after a quiet minute;
	// cuts that go on are summed up once a minute (cutSummary).
	w.cuts = newCutSummary(r.log.With("worker", wc.Name).Handler())
	pc.Logger = slog.New(w.cuts)
	if wc.Fleet != "" {
		w.fleet = fleets.Bucket(wc.Fleet)
		pc.Limiter = w.fleet
	}
	if w.p, err = pacer.New(pc); err != nil {
		return nil, fmt.Errorf("worker %q: %w", wc.Name, err)
	}
	return w, nil
}

// launch starts each worker's pacer, history and supervised source (the
// sources under run, in srcWG; the rest under bg, in bgWG), the demo
// producers and the status line.
func (r *Runner) launch(run context.Context, stop context.CancelCauseFunc, bg context.Context, bgWG, srcWG *sync.WaitGroup) {
	cfg := r.cfg
	for _, w := range r.workers {
		bgWG.Add(2)
		go func() { defer bgWG.Done(); _ = w.p.Run(bg) }()
		go func() { defer bgWG.Done(); w.hist.run(bg, w.take) }()
		env := plugin.Env{
			Worker: w.cfg.Name, Pacer: w.p, Log: r.log, DrainTimeout: cfg.DrainTimeout.D(),
			MaxInFlight: w.cfg.MaxInFlight, Handle: r.handler(w),
		}
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			r.supervise(run, w, env, cfg.RecoverTimeout.D(), stop)
		}()
		r.log.Info("worker started", "worker", w.cfg.Name, "source", w.cfg.Source.Kind(), "sink", w.cfg.Sink.Kind(),
			"rate", w.cfg.Settings.Rate, "base", w.cfg.Settings.Base, "max_in_flight", w.cfg.MaxInFlight, "fleet", w.cfg.Fleet)
	}
	if demo := cmp.Or(r.opts.Demo, cfg.Demo.Rate); demo > 0 {
		for _, w := range r.workers {
			if p, ok := w.src.(plugin.Producer); ok {
				srcWG.Add(1)
				go func() { defer srcWG.Done(); r.demo(run, w.cfg.Name, p, demo, cfg.Demo.Payload) }()
			}
		}
	}
	if every := cfg.StatusEvery.D(); every > 0 {
		bgWG.Add(1)
		go func() { defer bgWG.Done(); r.statusLog(bg, every) }()
	}
}

// drain waits for the sources to stop (their jobs in flight included) up
// to drain_timeout and killDelay, closing the pacers then so that a source
// waiting for a permit gives up; ends the sinks' jobs (kill) and waits for
// them and the sources at most stopMargin more; and logs each worker's
// counts.
func (r *Runner) drain(srcWG *sync.WaitGroup, kill context.CancelFunc) {
	r.draining.Store(true)
	drain := r.cfg.DrainTimeout.D()
	r.log.Info("draining: taking no new jobs, waiting for jobs in flight", "timeout", drain)
	srcDone := make(chan struct{})
	go func() { srcWG.Wait(); close(srcDone) }()
	killAt := time.NewTimer(drain + killDelay)
	defer killAt.Stop()
	select {
	case <-srcDone:
	case <-killAt.C:
		r.log.Warn("drain timeout: ending the jobs still running; they go back to their broker as not done", "timeout", drain)
		for _, w := range r.workers {
			w.p.Close() // a source waiting for a permit gives up
		}
	}
	// A source may have handed its jobs back and returned while their
	// sink calls still run (Asynq requeues at its ShutdownTimeout and
	// does not wait): end them, and wait until they have returned, so no
	// command outlives the process.
	kill()
	giveUp := time.NewTimer(stopMargin)
	defer giveUp.Stop()
	for _, c := range []<-chan struct{}{srcDone, r.calls.idle()} {
		select {
		case <-c:
		case <-giveUp.C:
			r.log.Error("a source or a sink did not stop in time; exiting without it", "waited", stopMargin)
		}
	}
	for _, w := range r.workers {
		w.p.Close()
		w.cuts.flush(time.Now())
	}
	// The same counters as the status line, /status and /metrics.
	for _, ws := range r.Status().Workers {
		r.log.Info("stopped", "worker", ws.Name, "dispatched", ws.Dispatched, "done", ws.Succeeded,
			"failed", ws.Failed, "throttled", ws.Throttled, "dropped", ws.Dropped, "in_flight", ws.InFlight)
	}
}

// The bounds of a drain: the sinks' jobs are ended when the sources have
// stopped, or killDelay after drain_timeout (the sources hand theirs back
// to the broker at drain_timeout: Asynq requeues them first), and Run
// returns at most stopMargin later, whatever a source or sink still does.
const (
	killDelay  = 250 * time.Millisecond
	stopMargin = 2 * time.Second
)

// handler returns the Env.Handle of w: the sink, under a context that
// the drain cancels only once drain_timeout has passed and that takes
// what the downstream advertises (sink.WithAdvisor) to w's pacer, with
// the outcome logged.
func (r *Runner) handler(w *runWorker) func(sink.Job) error {
	ctx := sink.WithAdvisor(r.hard, w.p.Advise) // the http sink's rate-limit headers pace the worker
	return func(j sink.Job) error {
		r.calls.add()
		defer r.calls.done()
		w.running.Add(1)
		out := w.snk.Handle(ctx, j)
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
			r.log.Info("status", "worker", ws.Name, "pace", round(ws.Pace), "reason", ws.Reason,
				"capacity", round(ws.Capacity), "done_per_s", round(ws.Measured),
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

// calls counts the sink calls running, and says when there are none.
type calls struct {
	mu   sync.Mutex    // guards n, none
	n    int           // calls running
	none chan struct{} // closed while n is 0; nil means closed
}

func (c *calls) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.none = make(chan struct{})
	}
	c.n++
}

func (c *calls) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 {
		close(c.none)
	}
}

// idle returns a channel closed once no call runs.
func (c *calls) idle() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return c.none
}
