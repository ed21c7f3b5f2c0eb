package runner

import (
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
			Pace: st.Pace, Measured: w.rate.get(), Ceiling: st.Ceiling, Base: st.Base, Factor: st.Factor,
			Backlog: st.Backlog.Pending, OldestAge: st.Backlog.OldestAge.Seconds(), InFlight: w.running.Load(),
			Dispatched: st.Dispatched, Succeeded: st.Succeeded, Failed: st.Failed, Throttled: st.Throttled,
			Pauses: st.Pauses, ProbeErrors: st.ProbeErrors,
		}
		if d, ok := plugin.As[plugin.Dropper](w.src); ok {
			ws.Dropped = d.Dropped()
		}
		if w.fleet != nil {
			ws.Fleet, ws.FleetMode = w.cfg.Fleet, w.fleet.Stats().Mode.String()
		}
		if !st.PausedUntil.IsZero() {
			t := st.PausedUntil
			ws.PausedUntil = &t
		}
		s.Workers = append(s.Workers, ws)
	}
	if fleets := r.fleets.Load(); fleets != nil {
		s.Fleets = fleets.Status()
	}
	return s
}
