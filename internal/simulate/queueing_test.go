package simulate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/simulate"
	"github.com/jobpacer/pacer/pacer"
)

// queueing: a downstream of 8, 16 and then 4 servers that queues instead
// of refusing. A worker without latency_target runs with LatencyAuto;
// per phase, past 10s of settling, the pacer holds ≥ 0.9 of what the
// servers serve, and the p90 latency of the jobs done (each 1 s window)
// stays ≤ 2 × the service time. Ceiling 1000/s: each job takes 20ms, and
// the servers serve 400, 800 and 200 jobs/s.
func TestSimulateQueueing(t *testing.T) {
	t.Parallel()
	sc, err := simulate.ScenarioByName("queueing")
	if err != nil {
		t.Fatal(err)
	}
	c := pacer.Config{Rate: 1000, Base: 100}
	if got := sc.Config(c).LatencyTarget; got != pacer.LatencyAuto {
		t.Fatalf("Config: LatencyTarget %v for a worker without one, want pacer.LatencyAuto", got)
	}
	if got := sc.Config(pacer.Config{LatencyTarget: 30 * time.Millisecond}).LatencyTarget; got != 30*time.Millisecond {
		t.Fatalf("Config: LatencyTarget %v for a worker with 30ms, want it kept", got)
	}
	const d, settle, service = 2 * time.Minute, 10 * time.Second, 20 * time.Millisecond
	s, err := simulate.Simulate(c, sc, d)
	if err != nil {
		t.Fatal(err)
	}
	for i, servers := range []int{8, 16, 4} {
		from, to := time.Duration(i)*d/3+settle, time.Duration(i+1)*d/3
		var done, capacity, n float64
		var worst time.Duration
		limits := map[int]bool{}
		for _, x := range s {
			if x.T < from || x.T >= to {
				continue
			}
			if x.Servers != servers {
				t.Fatalf("at %v: %d servers, want %d", x.T, x.Servers, servers)
			}
			done, capacity, n = done+x.DoneRate, capacity+x.Capacity, n+1
			worst = max(worst, x.DoneP90)
			limits[x.ConcurrencyLimit] = true
		}
		want := float64(servers) / service.Seconds()
		if n == 0 || capacity/n/want > 1.001 || capacity/n/want < 0.999 {
			t.Fatalf("phase %d: mean capacity %v/s, want %v/s in every sample", i+1, capacity/n, want)
		}
		t.Logf("phase %d (%d servers, %.0f/s): done ÷ served %.3f, worst p90 %v, limits %v", i+1, servers, want, done/capacity, worst, limits)
		if r := done / capacity; r < 0.9 || worst > 2*service || worst == 0 || limits[0] {
			t.Errorf("phase %d (%d servers, %.0f/s): done ÷ what the servers serve %.3f, worst p90 of a 1 s window %v, a limit shown %v; want ≥ 0.9, ≤ %v, true",
				i+1, servers, want, r, worst, !limits[0], 2*service)
		}
	}
	svg := simulate.SVG("queueing", s, sc.Timed(d).Marks...)
	for _, want := range []string{"concurrency limit", "in flight", "servers", "p90 latency", "8 servers", "16 servers", "4 servers"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
