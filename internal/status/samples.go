package status

import "time"

// Samples is what /samples serves: the process, its brokers and the
// recent history of every worker, one sample a second, oldest first. The
// dashboard page at / draws its charts from it. Each series is a column
// (one value per sample, in the order of T) so that a chart takes it as is.
type Samples struct {
	Process Process         `json:"process"`
	Brokers []Broker        `json:"brokers"`
	Every   float64         `json:"every_s"`  // seconds between two samples of a worker
	Window  float64         `json:"window_s"` // seconds of history a worker keeps
	Workers []WorkerSamples `json:"workers"`
}

// Process is the running pacer process in a Samples.
type Process struct {
	PID      int       `json:"pid"`
	Host     string    `json:"host"`
	Version  string    `json:"version"` // the module version of the binary, "(devel)" for a local build
	Go       string    `json:"go"`      // the Go version it was built with
	Started  time.Time `json:"started"`
	Uptime   float64   `json:"uptime_seconds"`
	Draining bool      `json:"draining"`
}

// Broker is one broker address of a run's config in a Samples.
type Broker struct {
	Kind     string `json:"kind"`     // redis or nats
	Addr     string `json:"addr"`     // as configured, credentials removed; for an embedded broker its address, "" until a source starts it
	Embedded bool   `json:"embedded"` // an in-process broker
}

// WorkerSamples is the history of one worker in a Samples. The columns
// hold the samples taken after the time asked for; the fields after them
// are the values at the worker's last sample, whatever was asked for.
type WorkerSamples struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	Sink        string `json:"sink"`
	Fleet       string `json:"fleet,omitempty"`
	MaxInFlight int    `json:"max_in_flight"` // 0: no cap

	T          []float64 `json:"t"`                     // sample times, Unix seconds
	Pace       []float64 `json:"pace"`                  // jobs/s the pacer admits (0 while paused)
	Ceiling    []float64 `json:"ceiling"`               // jobs/s
	Done       []float64 `json:"done_per_s"`            // jobs done (succeeded: the DONE of status) per second since the sample before
	Throttled  []float64 `json:"throttled_per_s"`       // jobs pushed back on per second since the sample before
	Backlog    []float64 `json:"backlog"`               // jobs pending in the source
	Factor     []float64 `json:"factor"`                //
	InFlight   []float64 `json:"in_flight"`             // jobs admitted and not done
	Paused     []float64 `json:"paused"`                // 1 while paused after pushback, else 0
	Capacity   []float64 `json:"capacity,omitempty"`    // the downstream's estimated capacity, jobs/s; 0 while no pushback limits the pace
	FleetShare []float64 `json:"fleet_share,omitempty"` // jobs/s this process keeps to when Redis is unreachable; absent without a fleet
	// ConcurrencyLimit and LatencyP90 are the concurrency limit learned
	// from latency (latency_target) and the p90 latency (ms) of its last
	// judgement; absent when it is off.
	ConcurrencyLimit []float64 `json:"concurrency_limit,omitempty"`
	LatencyP90       []float64 `json:"latency_p90_ms,omitempty"`

	Last *WorkerLast `json:"last,omitempty"` // nil before the first sample
}

// WorkerLast is a worker's state at its last sample.
type WorkerLast struct {
	T          float64 `json:"t"` // Unix seconds
	Dispatched uint64  `json:"dispatched"`
	Succeeded  uint64  `json:"succeeded"`
	Failed     uint64  `json:"failed"`
	Throttled  uint64  `json:"throttled"`
	Pauses     uint64  `json:"pauses"`
	Cuts       uint64  `json:"cuts"`   // pace cuts by pushback
	Reason     string  `json:"reason"` // what sets the pace: ceiling, backlog, pushback, concurrency or advertised
	// LatencyNoLoad is the no-load latency (ms) the concurrency limit is
	// judged against; 0 when it is off or unknown. ConcurrencyCuts counts
	// the limit's cuts by latency.
	LatencyNoLoad   float64    `json:"latency_no_load_ms,omitempty"`
	ConcurrencyCuts uint64     `json:"concurrency_cuts,omitempty"`
	PausedUntil     *time.Time `json:"paused_until,omitempty"`
	FleetMode       string     `json:"fleet_mode,omitempty"`
	FleetProcesses  int        `json:"fleet_processes,omitempty"`
}
