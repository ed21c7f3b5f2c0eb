package simulate

import (
	"encoding/csv"
	"math"
	"os"
	"strconv"
	"time"
)

// WriteCSV writes samples to a CSV file at path, one row a sample. Times
// are in seconds and latencies in milliseconds, both rounded to the
// microsecond; rates and the factor are rounded to 3 decimals.
func WriteCSV(path string, samples []Sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"t_s", "arrival_per_s", "pace_per_s", "done_per_s", "ceiling_per_s", "factor", "backlog_jobs", "arrived", "done", "throttled",
		"throttled_per_s", "capacity_per_s", "estimated_capacity_per_s", "reason",
		"servers", "in_flight", "concurrency_limit", "latency_no_load_ms", "latency_mean_ms", "latency_p90_ms", "done_p90_ms"})
	ff := func(v float64, decimals int) string {
		p := math.Pow(10, float64(decimals))
		return strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
	}
	r3 := func(v float64) string { return ff(v, 3) }
	sec := func(d time.Duration) string { return ff(d.Seconds(), 6) }
	ms := func(d time.Duration) string { return ff(float64(d)/float64(time.Millisecond), 3) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, s := range samples {
		_ = w.Write([]string{sec(s.T), r3(s.Arrival), r3(s.Pace), r3(s.DoneRate), r3(s.Ceiling), r3(s.Factor),
			i(s.Backlog), i(s.Arrived), i(s.Done), i(s.Throttled),
			r3(s.ThrottledRate), r3(s.Capacity), r3(s.Estimate), string(s.Reason),
			i(int64(s.Servers)), i(s.InFlight), i(int64(s.ConcurrencyLimit)), ms(s.LatencyNoLoad), ms(s.LatencyMean), ms(s.LatencyP90), ms(s.DoneP90)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
