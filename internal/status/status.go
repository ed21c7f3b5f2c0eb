package status

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is what /status serves: the state of every worker of a running
// pacer run.
type Status struct {
	Started  time.Time         `json:"started"`
	Uptime   float64           `json:"uptime_seconds"`
	Draining bool              `json:"draining"`
	Ready    bool              `json:"ready"`              // what /readyz says: every worker up, not draining
	Embedded map[string]string `json:"embedded,omitempty"` // addresses of the embedded brokers, by kind
	Workers  []WorkerStatus    `json:"workers"`
	Fleets   []FleetStatus     `json:"fleets,omitempty"` // the fleet limits the workers share, by name
}

// WorkerStatus is one worker in a Status.
type WorkerStatus struct {
	Name        string     `json:"name"`
	Source      string     `json:"source"`
	Sink        string     `json:"sink"`
	Up          bool       `json:"up"`                   // its source runs; false while it is restarted after a failure
	DownSince   *time.Time `json:"down_since,omitempty"` // set while down
	Error       string     `json:"error,omitempty"`      // why it is down
	Restarts    uint64     `json:"restarts"`             // attempts to restart its source
	Fleet       string     `json:"fleet,omitempty"`      // the fleet limit it obeys after its pace
	FleetMode   string     `json:"fleet_mode,omitempty"` // that limit's mode: redis, fallback or rejoining
	Pace        float64    `json:"pace"`                 // jobs/s the pacer admits now (0 while paused)
	Measured    float64    `json:"measured"`             // jobs/s done (Succeeded) over the last 5 s
	Ceiling     float64    `json:"ceiling"`              // rate, jobs/s
	Base        float64    `json:"base"`                 // base pace, jobs/s
	Factor      float64    `json:"factor"`               //
	Backlog     int64      `json:"backlog"`              // jobs pending in the source
	OldestAge   float64    `json:"oldest_age_s"`         // seconds
	InFlight    int64      `json:"in_flight"`            // jobs in the sink now (not a permit waiting for a message)
	Dispatched  uint64     `json:"dispatched"`           // jobs admitted
	Succeeded   uint64     `json:"succeeded"`            // jobs done: the sink succeeded (DONE)
	Failed      uint64     `json:"failed"`               //
	Throttled   uint64     `json:"throttled"`            //
	Dropped     uint64     `json:"dropped"`              // core NATS jobs lost to a full buffer
	Pauses      uint64     `json:"pauses"`               // pushback pauses
	ProbeErrors uint64     `json:"probe_errors"`         //
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	Reason      string     `json:"reason"`   // what sets the pace: ceiling, backlog, pushback or concurrency
	Goodput     float64    `json:"goodput"`  // jobs/s done (succeeded or failed) over the last second
	Capacity    float64    `json:"capacity"` // the downstream's estimated capacity, jobs/s; 0 while no pushback limits the pace
	Cuts        uint64     `json:"cuts"`     // pace cuts by pushback, one per event
	// The learned concurrency limit (latency_target), when on: the limit,
	// its cuts by latency, the downstream's no-load latency and the 90th
	// percentile latency of the last judgement, in seconds.
	ConcurrencyLimit int     `json:"concurrency_limit,omitempty"`
	ConcurrencyCuts  uint64  `json:"concurrency_cuts,omitempty"`
	LatencyNoLoad    float64 `json:"latency_no_load_s,omitempty"`
	LatencyP90       float64 `json:"latency_p90_s,omitempty"`
}

// FleetStatus is one fleet limit in a Status.
type FleetStatus struct {
	Name          string     `json:"name"`
	Store         string     `json:"store,omitempty"`          // where the fleet is held: redis or nats
	Mode          string     `json:"mode"`                     // redis (nats), fallback or rejoining (see redisbucket.Mode, natsbucket.Mode)
	Rate          float64    `json:"rate"`                     // jobs/s for the whole fleet
	Processes     int        `json:"processes"`                // members (pacer processes) seen sharing it at the last Redis call
	Share         float64    `json:"share"`                    // jobs/s this process keeps to during an outage
	Workers       []string   `json:"workers"`                  // the workers of this process that use it
	Dispatched    uint64     `json:"dispatched"`               // jobs this process took from the fleet limit
	RedisCalls    uint64     `json:"redis_calls"`              //
	RedisErrors   uint64     `json:"redis_errors"`             //
	Fallbacks     uint64     `json:"fallbacks"`                // times it fell back to its local share
	FallbackSince *time.Time `json:"fallback_since,omitempty"` // set while in fallback
	LastError     string     `json:"last_error,omitempty"`     // the last Redis error
}

// Fetch reads /status from the admin address of a running pacer
// run; it returns the decoded status and the raw JSON.
func Fetch(addr string) (Status, []byte, error) {
	var st Status
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url + "/status")
	if err != nil {
		return st, nil, fmt.Errorf("%w (is `pacer run` running with admin = %q?)", err, addr)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, nil, fmt.Errorf("GET %s/status: %s", url, resp.Status)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("GET %s/status: %w", url, err)
	}
	return st, raw, nil
}

// WriteTable writes st as a table, one worker a row.
func WriteTable(w io.Writer, addr string, st Status) {
	state := "running"
	switch {
	case st.Draining:
		state = "draining"
	case !st.Ready:
		state = "NOT READY"
	}
	fmt.Fprintf(w, "pacer at %s: %s, up %s\n", addr, state, (time.Duration(st.Uptime) * time.Second).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKER\tSOURCE→SINK\tPACE/s\tWHY\tCAPACITY/s\tDONE/s\tCEILING/s\tFACTOR\tBACKLOG\tIN FLIGHT\tDONE\tFAILED\tTHROTTLED\tDROPPED\tPAUSED\t")
	for _, ws := range st.Workers {
		paused := "-"
		if ws.PausedUntil != nil {
			if d := time.Until(*ws.PausedUntil); d > 0 {
				paused = d.Round(100 * time.Millisecond).String()
			}
		}
		capacity := "-"
		if ws.Capacity > 0 {
			capacity = fmt.Sprintf("%.1f", ws.Capacity)
		}
		why := ws.Reason
		if why == "" {
			why = "-"
		}
		fmt.Fprintf(tw, "%s\t%s→%s\t%.1f\t%s\t%s\t%.1f\t%g\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n",
			ws.Name, ws.Source, ws.Sink, ws.Pace, why, capacity, ws.Measured, ws.Ceiling, ws.Factor, ws.Backlog, ws.InFlight,
			ws.Succeeded, ws.Failed, ws.Throttled, ws.Dropped, paused)
	}
	tw.Flush()
	for _, ws := range st.Workers {
		if ws.ConcurrencyLimit > 0 {
			fmt.Fprintf(w, "worker %s: concurrency limit %d (learned from latency), latency p90 %v, no-load %v, %d cuts\n", ws.Name, ws.ConcurrencyLimit,
				secs(ws.LatencyP90), secs(ws.LatencyNoLoad), ws.ConcurrencyCuts)
		}
	}
	for _, ws := range st.Workers {
		if !ws.Up {
			down := ""
			if ws.DownSince != nil {
				down = " for " + time.Since(*ws.DownSince).Round(time.Second).String()
			}
			fmt.Fprintf(w, "worker %s: DOWN%s, %d restart attempts: %s\n", ws.Name, down, ws.Restarts, ws.Error)
		}
	}
	if len(st.Fleets) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FLEET\tMODE\tRATE/s\tPROCESSES\tSHARE/s\tDONE HERE\tREDIS CALLS\tFALLBACKS\tWORKERS HERE\t")
	for _, f := range st.Fleets {
		mode := f.Mode
		if f.FallbackSince != nil {
			mode += " " + time.Since(*f.FallbackSince).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%g\t%d\t%.1f\t%d\t%d\t%d\t%s\t\n", f.Name, mode, f.Rate, f.Processes, f.Share,
			f.Dispatched, f.RedisCalls, f.Fallbacks, strings.Join(f.Workers, ","))
	}
	tw.Flush()
	for _, f := range st.Fleets {
		if f.Mode != "redis" && f.Mode != "nats" && f.LastError != "" {
			fmt.Fprintf(w, "fleet %s: %s: %s\n", f.Name, f.Mode, f.LastError)
		}
	}
}

// secs formats seconds as a duration, to 0.1ms.
func secs(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Microsecond)
}
