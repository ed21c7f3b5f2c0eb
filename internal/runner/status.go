package runner

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/status"
)

// Status returns the state of the workers.
func (r *Runner) Status() status.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := status.Status{Started: r.started, Uptime: time.Since(r.started).Seconds(), Draining: r.draining.Load(),
		Embedded: r.brokers.Embedded(), Workers: []status.WorkerStatus{}}
	for _, w := range r.workers {
		st := w.p.Stats()
		ws := status.WorkerStatus{
			Name: w.cfg.Name, Source: w.cfg.Source.Kind(), Sink: w.cfg.Sink.Kind(),
			Pace: st.Pace, Measured: w.hist.measured(), Ceiling: st.Ceiling, Base: st.Base, Factor: st.Factor,
			Backlog: st.Backlog.Pending, OldestAge: st.Backlog.OldestAge.Seconds(), InFlight: w.running.Load(),
			Dispatched: st.Dispatched, Succeeded: st.Succeeded, Failed: st.Failed, Throttled: st.Throttled,
			Pauses: st.Pauses, ProbeErrors: st.ProbeErrors,
			Reason: string(st.Reason), Goodput: st.Goodput, Capacity: st.Capacity, Cuts: st.Cuts,
			ConcurrencyLimit: st.ConcurrencyLimit, ConcurrencyCuts: st.ConcurrencyCuts,
			LatencyNoLoad: st.LatencyNoLoad.Seconds(), LatencyP90: st.LatencyP90.Seconds(),
		}
		ws.Up, ws.Restarts = true, w.health.restarts.Load()
		if since, err := w.health.get(); !since.IsZero() {
			ws.Up, ws.DownSince = false, &since
			if err != nil {
				ws.Error = r.brokers.Secrets().Error(err)
			}
		}
		if d, ok := w.src.(plugin.Dropper); ok {
			ws.Dropped = d.Dropped()
		}
		if w.fleet != nil {
			ws.Fleet, ws.FleetMode = w.cfg.Fleet, w.fleet.Info().Mode
		}
		if !st.PausedUntil.IsZero() {
			t := st.PausedUntil
			ws.PausedUntil = &t
		}
		s.Workers = append(s.Workers, ws)
	}
	if fleets := r.fleets.Load(); fleets != nil {
		s.Fleets = fleets.Status()
		for i := range s.Fleets {
			s.Fleets[i].LastError = r.brokers.Secrets().String(s.Fleets[i].LastError)
		}
	}
	s.Ready = r.readyLocked() == nil
	return s
}

// Readiness returns nil when the run is ready for work: started, every
// worker's source running, not draining. Otherwise it says why. It is
// what /readyz serves.
func (r *Runner) Readiness() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readyLocked()
}

// readyLocked is Readiness. It requires mu held.
func (r *Runner) readyLocked() error {
	select {
	case <-r.ready:
	default:
		return errors.New("starting")
	}
	if r.draining.Load() {
		return errors.New("draining")
	}
	var down []string
	for _, w := range r.workers {
		if since, err := w.health.get(); !since.IsZero() {
			down = append(down, fmt.Sprintf("worker %q down for %v: %v", w.cfg.Name, time.Since(since).Round(time.Second), err))
		}
	}
	if len(down) > 0 {
		return errors.New(strings.Join(down, "; "))
	}
	return nil
}
