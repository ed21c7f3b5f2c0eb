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
}

// WorkerStatus is one worker in a Status.
type WorkerStatus struct {
	Name        string     `json:"name"`
	Source      string     `json:"source"`
	Sink        string     `json:"sink"`
	Pace        float64    `json:"pace"`         // jobs/s the pacer admits now (0 while paused)
	Measured    float64    `json:"measured"`     // jobs/s admitted over the last 5 s
	Ceiling     float64    `json:"ceiling"`      // rate, jobs/s
	Base        float64    `json:"base"`         // base pace, jobs/s
	Factor      float64    `json:"factor"`       //
	Backlog     int64      `json:"backlog"`      // jobs pending in the source
	OldestAge   float64    `json:"oldest_age_s"` // seconds
	InFlight    int64      `json:"in_flight"`    // jobs admitted and not done
	Dispatched  uint64     `json:"dispatched"`   // jobs admitted
	Succeeded   uint64     `json:"succeeded"`    //
	Failed      uint64     `json:"failed"`       //
	Throttled   uint64     `json:"throttled"`    //
	Dropped     uint64     `json:"dropped"`      // core NATS jobs lost to a full buffer
	Pauses      uint64     `json:"pauses"`       // pushback pauses
	ProbeErrors uint64     `json:"probe_errors"` //
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
		if !st.PausedUntil.IsZero() {
			t := st.PausedUntil
			ws.PausedUntil = &t
		}
		s.Workers = append(s.Workers, ws)
	}
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
)

type collector struct{ r *Runner }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPace, descCeil, descBase, descFactor, descBack, descAge, descIn,
		descDisp, descOK, descFail, descThr, descDrop, descPause, descProbe} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.r.Status().Workers {
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
