package simulate_test

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/simulate"
	"github.com/jobpacer/pacer/pacer"
)

func runScenario(t *testing.T, scenario string) []simulate.Sample {
	t.Helper()
	sc, err := simulate.ScenarioByName(scenario)
	if err != nil {
		t.Fatal(err)
	}
	s, err := simulate.Simulate(pacer.Config{Rate: 20, Base: 5, Burst: 5, BacklogTarget: 4 * time.Second}, sc, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSimulate(t *testing.T) {
	t.Parallel()
	t.Run("steady: everything that arrives is done at factor 1", func(t *testing.T) {
		s := runScenario(t, "steady")
		last := s[len(s)-1]
		if last.Arrived-last.Done > 1 {
			t.Errorf("arrived %d, done %d", last.Arrived, last.Done)
		}
		for _, x := range s {
			if x.Factor != 1 || x.DoneRate > 5+1 {
				t.Fatalf("at %v: factor %g, done %g/s; want 1 and ≤ base", x.T, x.Factor, x.DoneRate)
			}
		}
	})
	t.Run("burst: the factor rises with the backlog, never past the ceiling, and the backlog drains", func(t *testing.T) {
		s := runScenario(t, "burst")
		maxF, maxDone := 0.0, 0.0
		for _, x := range s {
			maxF, maxDone = max(maxF, x.Factor), max(maxDone, x.DoneRate)
		}
		if maxF <= 1.5 || maxDone > 20+1 {
			t.Errorf("peak factor %g, peak done %g/s; want > 1.5 and ≤ the ceiling 20 (+1 for the window)", maxF, maxDone)
		}
		if last := s[len(s)-1]; last.Backlog > 2 || last.Factor != 1 {
			t.Errorf("at the end: backlog %d, factor %g; want drained and back to 1", last.Backlog, last.Factor)
		}
	})
	t.Run("throttle-storm: a storm of pushback cuts the factor below 1 and pauses", func(t *testing.T) {
		s := runScenario(t, "throttle-storm")
		minF, paused := 10.0, false
		for _, x := range s {
			minF = min(minF, x.Factor)
			paused = paused || x.Pace == 0
		}
		if last := s[len(s)-1]; minF >= 1 || !paused || last.Throttled == 0 {
			t.Errorf("min factor %g, paused %v, throttled %d; want < 1, true, > 0", minF, paused, last.Throttled)
		}
	})
}

// moving-capacity: the pace follows a downstream capacity nobody
// configured, phase by phase, and the estimate shows it.
func TestSimulateMovingCapacity(t *testing.T) {
	t.Parallel()
	sc, err := simulate.ScenarioByName("moving-capacity")
	if err != nil {
		t.Fatal(err)
	}
	const d = 2 * time.Minute
	s, err := simulate.Simulate(pacer.Config{Rate: 200, Burst: 5, MinFactor: 0.05}, sc, d)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		// The second half of each phase.
		from, to := time.Duration(2*i+1)*d/8, time.Duration(2*i+2)*d/8
		var done, capacity, n float64
		var estimated bool
		for _, x := range s {
			if x.T >= from && x.T < to {
				done, capacity, n = done+x.DoneRate, capacity+x.Capacity, n+1
				estimated = estimated || x.Estimate > 0
			}
		}
		if r := done / capacity; r < 0.9 || r > 1.02 || !estimated {
			t.Errorf("phase %d (capacity %.0f/s): done ÷ capacity %.3f, an estimate shown %v; want in [0.9, 1.02], true", i+1, capacity/n, r, estimated)
		}
	}
	svg := simulate.SVG("moving", s)
	for _, want := range []string{"downstream capacity", "estimated capacity"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	t.Parallel()
	svg := simulate.SVG("a <title>", runScenario(t, "burst"))
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	for _, want := range []string{"time (s)", "throughput (jobs/s)", "factor (× base)", "backlog (jobs)", "ceiling (rate)", "pace admitted", "a &lt;title&gt;"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestScenarioByNameUnknown(t *testing.T) {
	t.Parallel()
	if _, err := simulate.ScenarioByName("rain"); err == nil || !strings.Contains(err.Error(), simulate.Scenarios) {
		t.Fatalf("ScenarioByName(rain) = %v", err)
	}
}

// In a steady state every job that arrives is done, and the "done (1 s
// window)" line reads what arrives, not below it.
func TestSteadyDoneRateMatchesArrivals(t *testing.T) {
	t.Parallel()
	sc, err := simulate.ScenarioByName("steady")
	if err != nil {
		t.Fatal(err)
	}
	samples, err := simulate.Simulate(pacer.Config{Rate: 20, Base: 5}, sc, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var sum, arr float64
	n := 0
	for _, s := range samples {
		if s.T < 10*time.Second {
			continue // warm-up
		}
		sum += s.DoneRate
		arr += s.Arrival
		n++
	}
	if got, want := sum/float64(n), arr/float64(n); got < 0.97*want || got > 1.03*want {
		t.Errorf("mean done rate in a steady state = %.3f/s, want the arrival rate %.3f/s ± 3%%", got, want)
	}
}
