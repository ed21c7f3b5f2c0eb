package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/pacer"
)

// Handler serves /metrics (Prometheus text format) and /status (JSON),
// both from what get returns at each request, and the dashboard: the page
// at / and the samples it draws, /samples (JSON), from what samples
// returns for the time in its query (?since=Unix seconds; the zero time
// without). Every route is a GET; none changes anything. It is safe for
// concurrent use if get and samples are.
func Handler(get func() status.Status, samples func(since time.Time) status.Samples) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collector{get})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(get())
	})
	routeDashboard(mux, samples)
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
	descIn     = prometheus.NewDesc("pacer_in_flight_jobs", "Jobs in the sink now (the IN FLIGHT of pacer status).", labels, nil)
	descDisp   = prometheus.NewDesc("pacer_jobs_dispatched_total", "Jobs admitted by the pacer.", labels, nil)
	descOK     = prometheus.NewDesc("pacer_jobs_succeeded_total", "Jobs the sink handled.", labels, nil)
	descFail   = prometheus.NewDesc("pacer_jobs_failed_total", "Jobs the sink failed (retried by the source).", labels, nil)
	descThr    = prometheus.NewDesc("pacer_jobs_throttled_total", "Jobs the sink's downstream pushed back on.", labels, nil)
	descDrop   = prometheus.NewDesc("pacer_jobs_dropped_total", "Core NATS jobs lost to a full buffer.", labels, nil)
	descPause  = prometheus.NewDesc("pacer_pauses_total", "Pauses after pushback, one per pushback.", labels, nil)
	descProbe  = prometheus.NewDesc("pacer_probe_errors_total", "Backlog probes that failed.", labels, nil)
	descGood   = prometheus.NewDesc("pacer_goodput_jobs_per_second", "Jobs done (succeeded or failed) per second over the last second.", labels, nil)
	descCap    = prometheus.NewDesc("pacer_capacity_jobs_per_second", "The downstream's capacity as the pacer estimates it from pushback and latency; 0 while none limits the pace.", labels, nil)
	descCuts   = prometheus.NewDesc("pacer_cuts_total", "Pace cuts by pushback, one per event.", labels, nil)
	descConc   = prometheus.NewDesc("pacer_concurrency_limit_jobs", "The concurrency limit learned from latency (latency_target); 0 when off.", labels, nil)
	descConcC  = prometheus.NewDesc("pacer_concurrency_cuts_total", "Cuts of the learned concurrency limit by latency.", labels, nil)
	descLatNL  = prometheus.NewDesc("pacer_latency_no_load_seconds", "The downstream's no-load latency the concurrency limit is judged against; 0 while unknown or off.", labels, nil)
	descLatP90 = prometheus.NewDesc("pacer_latency_p90_seconds", "The 90th percentile latency (dispatch to done) of the last judgement of the concurrency limit; 0 while unknown or off.", labels, nil)
	descReason = prometheus.NewDesc("pacer_pace_reason", "1 for what sets the pace now (ceiling, backlog, pushback, concurrency), 0 for the others.", []string{"worker", "reason"}, nil)
	descUp     = prometheus.NewDesc("pacer_worker_up", "1 while the worker's source runs, 0 while it is down and being restarted.", labels, nil)
	descRestrt = prometheus.NewDesc("pacer_worker_restarts_total", "Attempts to restart the worker's source after it failed.", labels, nil)
	descReady  = prometheus.NewDesc("pacer_ready", "1 when every worker runs and the run is not draining (what /readyz says).", nil, nil)

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

var reasons = []string{string(pacer.ReasonCeiling), string(pacer.ReasonBacklog), string(pacer.ReasonPushback), string(pacer.ReasonConcurrency)}

var fleetModes = []string{redisbucket.ModeRedis.String(), redisbucket.ModeFallback.String(), redisbucket.ModeRejoining.String()}

type collector struct{ get func() status.Status }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPace, descCeil, descBase, descFactor, descBack, descAge, descIn,
		descDisp, descOK, descFail, descThr, descDrop, descPause, descProbe, descGood, descCap, descCuts, descConc, descConcC, descLatNL, descLatP90, descReason, descUp, descRestrt, descReady,
		descFleetMode, descFleetRate, descFleetProcs, descFleetShare, descFleetDisp, descFleetCalls, descFleetErrs, descFleetFallbk} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.get()
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
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
		g(descGood, w.Goodput)
		g(descCap, w.Capacity)
		n(descCuts, w.Cuts)
		g(descConc, float64(w.ConcurrencyLimit))
		n(descConcC, w.ConcurrencyCuts)
		g(descLatNL, w.LatencyNoLoad)
		g(descLatP90, w.LatencyP90)
		for _, r := range reasons {
			v := 0.0
			if r == w.Reason {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descReason, prometheus.GaugeValue, v, w.Name, r)
		}
		up := 0.0
		if w.Up {
			up = 1
		}
		g(descUp, up)
		n(descRestrt, w.Restarts)
	}
}
