package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/pacer"
)

// Status is what /status serves: the state of every worker of a running
// pacer run.
type Status struct {
	Started  time.Time         `json:"started"`
	Uptime   float64           `json:"uptime_seconds"`
	Draining bool              `json:"draining"`
	Embedded map[string]string `json:"embedded,omitempty"` // addresses of the embedded brokers, by kind
	Workers  []WorkerStatus    `json:"workers"`
	Fleets   []FleetStatus     `json:"fleets,omitempty"` // the fleet limits the workers share, by name
}

// WorkerStatus is one worker in a Status.
type WorkerStatus struct {
	Name        string     `json:"name"`
	Source      string     `json:"source"`
	Sink        string     `json:"sink"`
	Fleet       string     `json:"fleet,omitempty"`      // the fleet limit it obeys after its pace
	FleetMode   string     `json:"fleet_mode,omitempty"` // that limit's mode: redis, fallback or rejoining
	Pace        float64    `json:"pace"`                 // jobs/s the pacer admits now (0 while paused)
	Measured    float64    `json:"measured"`             // jobs/s admitted over the last 5 s
	Ceiling     float64    `json:"ceiling"`              // rate, jobs/s
	Base        float64    `json:"base"`                 // base pace, jobs/s
	Factor      float64    `json:"factor"`               //
	Backlog     int64      `json:"backlog"`              // jobs pending in the source
	OldestAge   float64    `json:"oldest_age_s"`         // seconds
	InFlight    int64      `json:"in_flight"`            // jobs admitted and not done
	Dispatched  uint64     `json:"dispatched"`           // jobs admitted
	Succeeded   uint64     `json:"succeeded"`            //
	Failed      uint64     `json:"failed"`               //
	Throttled   uint64     `json:"throttled"`            //
	Dropped     uint64     `json:"dropped"`              // core NATS jobs lost to a full buffer
	Pauses      uint64     `json:"pauses"`               // pushback pauses
	ProbeErrors uint64     `json:"probe_errors"`         //
	PausedUntil *time.Time `json:"paused_until,omitempty"`
}

// Status returns the state of the workers.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Started: r.started, Uptime: time.Since(r.started).Seconds(), Draining: r.draining.Load(),
		Embedded: r.brokers.Embedded(), Workers: []WorkerStatus{}}
	for _, w := range r.workers {
		st := w.p.Stats()
		ws := WorkerStatus{
			Name: w.cfg.Name, Source: w.cfg.Source.Kind(), Sink: w.cfg.Sink.Kind(),
			Pace: st.Pace, Measured: w.rate.get(), Ceiling: st.Ceiling, Base: st.Base, Factor: st.Factor,
			Backlog: st.Backlog.Pending, OldestAge: st.Backlog.OldestAge.Seconds(), InFlight: st.InFlight,
			Dispatched: st.Dispatched, Succeeded: st.Succeeded, Failed: st.Failed, Throttled: st.Throttled,
			Pauses: st.Pauses, ProbeErrors: st.ProbeErrors,
		}
		if d, ok := w.src.(Dropper); ok {
			ws.Dropped = d.Dropped()
		}
		if w.fleet != nil {
			ws.Fleet, ws.FleetMode = w.cfg.Fleet, w.fleet.bucket.Stats().Mode.String()
		}
		if !st.PausedUntil.IsZero() {
			t := st.PausedUntil
			ws.PausedUntil = &t
		}
		s.Workers = append(s.Workers, ws)
	}
	s.Fleets = r.fleetStatus()
	return s
}

// AdminHandler serves /metrics (Prometheus text format) and /status
// (JSON).
func (r *Runner) AdminHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collector{r})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r.Status())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("pacer: /metrics, /status\n"))
	})
	return mux
}

var (
	labels     = []string{"worker"}
	descPace   = prometheus.NewDesc("pacer_pace_jobs_per_second", "Jobs per second the pacer admits now: min(base × factor, ceiling); 0 while paused.", labels, nil)
	descCeil   = prometheus.NewDesc("pacer_ceiling_jobs_per_second", "The hard ceiling (rate), jobs per second.", labels, nil)
	descBase   = prometheus.NewDesc("pacer_base_jobs_per_second", "The base pace, jobs per second.", labels, nil)
	descFactor = prometheus.NewDesc("pacer_factor", "The controller's factor on the base pace.", labels, nil)
	descBack   = prometheus.NewDesc("pacer_backlog_jobs", "Jobs pending in the source at the last probe.", labels, nil)
	descAge    = prometheus.NewDesc("pacer_backlog_oldest_age_seconds", "Age of the oldest pending job at the last probe.", labels, nil)
	descIn     = prometheus.NewDesc("pacer_in_flight_jobs", "Jobs admitted and not done.", labels, nil)
	descDisp   = prometheus.NewDesc("pacer_jobs_dispatched_total", "Jobs admitted by the pacer.", labels, nil)
	descOK     = prometheus.NewDesc("pacer_jobs_succeeded_total", "Jobs the sink handled.", labels, nil)
	descFail   = prometheus.NewDesc("pacer_jobs_failed_total", "Jobs the sink failed (retried by the source).", labels, nil)
	descThr    = prometheus.NewDesc("pacer_jobs_throttled_total", "Jobs the sink's downstream pushed back on.", labels, nil)
	descDrop   = prometheus.NewDesc("pacer_jobs_dropped_total", "Core NATS jobs lost to a full buffer.", labels, nil)
	descPause  = prometheus.NewDesc("pacer_pauses_total", "Pauses after pushback, one per pushback.", labels, nil)
	descProbe  = prometheus.NewDesc("pacer_probe_errors_total", "Backlog probes that failed.", labels, nil)

	fleetLabels     = []string{"fleet"}
	descFleetMode   = prometheus.NewDesc("pacer_fleet_mode", "1 for the fleet limit's current mode (redis: shared in Redis; fallback: Redis unreachable, local share; rejoining), 0 for the others.", []string{"fleet", "mode"}, nil)
	descFleetRate   = prometheus.NewDesc("pacer_fleet_rate_jobs_per_second", "The fleet-wide limit, jobs per second.", fleetLabels, nil)
	descFleetProcs  = prometheus.NewDesc("pacer_fleet_processes", "Processes seen sharing the fleet limit at the last Redis call.", fleetLabels, nil)
	descFleetShare  = prometheus.NewDesc("pacer_fleet_share_jobs_per_second", "The rate this process keeps to while Redis is unreachable.", fleetLabels, nil)
	descFleetDisp   = prometheus.NewDesc("pacer_fleet_jobs_dispatched_total", "Jobs this process took from the fleet limit.", fleetLabels, nil)
	descFleetCalls  = prometheus.NewDesc("pacer_fleet_redis_calls_total", "Redis calls of the fleet limit, failed ones included.", fleetLabels, nil)
	descFleetErrs   = prometheus.NewDesc("pacer_fleet_redis_errors_total", "Redis calls of the fleet limit that failed.", fleetLabels, nil)
	descFleetFallbk = prometheus.NewDesc("pacer_fleet_fallbacks_total", "Times the fleet limit fell back to this process's local share.", fleetLabels, nil)
)

var fleetModes = []string{redisbucket.ModeRedis.String(), redisbucket.ModeFallback.String(), redisbucket.ModeRejoining.String()}

type collector struct{ r *Runner }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPace, descCeil, descBase, descFactor, descBack, descAge, descIn,
		descDisp, descOK, descFail, descThr, descDrop, descPause, descProbe,
		descFleetMode, descFleetRate, descFleetProcs, descFleetShare, descFleetDisp, descFleetCalls, descFleetErrs, descFleetFallbk} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Status()
	for _, f := range st.Fleets {
		for _, m := range fleetModes {
			v := 0.0
			if m == f.Mode {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descFleetMode, prometheus.GaugeValue, v, f.Name, m)
		}
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, f.Name)
		}
		n := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), f.Name)
		}
		g(descFleetRate, f.Rate)
		g(descFleetProcs, float64(f.Processes))
		g(descFleetShare, f.Share)
		n(descFleetDisp, f.Dispatched)
		n(descFleetCalls, f.RedisCalls)
		n(descFleetErrs, f.RedisErrors)
		n(descFleetFallbk, f.Fallbacks)
	}
	for _, w := range st.Workers {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, w.Name)
		}
		n := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), w.Name)
		}
		g(descPace, w.Pace)
		g(descCeil, w.Ceiling)
		g(descBase, w.Base)
		g(descFactor, w.Factor)
		g(descBack, float64(w.Backlog))
		g(descAge, w.OldestAge)
		g(descIn, float64(w.InFlight))
		n(descDisp, w.Dispatched)
		n(descOK, w.Succeeded)
		n(descFail, w.Failed)
		n(descThr, w.Throttled)
		n(descDrop, w.Dropped)
		n(descPause, w.Pauses)
		n(descProbe, w.ProbeErrors)
	}
}

// meter measures the jobs per second a pacer admits, over 5 s.
type meter struct {
	mu   sync.Mutex // guards ring, rate
	ring []uint64
	rate float64
}

const meterWindow = 5

func (m *meter) run(ctx context.Context, p *pacer.Pacer) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := p.Stats().Dispatched
		m.mu.Lock()
		m.ring = append(m.ring, d)
		if len(m.ring) > meterWindow+1 {
			m.ring = m.ring[1:]
		}
		if n := len(m.ring); n > 1 {
			m.rate = float64(m.ring[n-1]-m.ring[0]) / float64(n-1)
		}
		m.mu.Unlock()
	}
}

func (m *meter) get() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rate
}
