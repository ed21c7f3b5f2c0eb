package pacer_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// pool is a downstream of n(t) servers with a FIFO queue on the fake
// clock: a job's latency is its wait for a server plus its service time,
// service(t). It never answers 429.
type pool struct {
	n       func(t time.Duration) int
	service func(t time.Duration) time.Duration
	free    []time.Duration // when each server is next free
}

func (s *pool) latency(now time.Duration, _ int) time.Duration {
	n := s.n(now)
	for len(s.free) < n {
		s.free = append(s.free, now)
	}
	if len(s.free) > n {
		// Servers leave once they finish what they hold: keep the n
		// that are free soonest.
		sortDurations(s.free)
		s.free = s.free[:n]
	}
	i := 0
	for k := range s.free {
		if s.free[k] < s.free[i] {
			i = k
		}
	}
	start := max(now, s.free[i])
	s.free[i] = start + s.service(now)
	return s.free[i] - now
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

func fixed(d time.Duration) func(time.Duration) time.Duration {
	return func(time.Duration) time.Duration { return d }
}

func serverSteps(phase time.Duration, n ...int) func(time.Duration) int {
	return func(t time.Duration) int { return n[min(int(t/phase), len(n)-1)] }
}

// checkPhases runs w for len(caps) phases and checks, per phase past its
// first settle, goodput ≥ 0.95 of caps[i] and p90 ≤ p90s[i].
func checkPhases(t *testing.T, w *world, phase, settle time.Duration, caps []float64, p90s []time.Duration) {
	t.Helper()
	w.run(phase * time.Duration(len(caps)))
	for i, c := range caps {
		from, to := time.Duration(i)*phase+settle, time.Duration(i+1)*phase
		g, _ := w.phase(from, to)
		p90 := w.p90(from, to)
		t.Logf("phase %d: capacity %.0f/s, goodput %.1f (%.3f), p90 %v (bound %v)", i, c, g, g/c, p90, p90s[i])
		if g/c < 0.95 || p90 > p90s[i] {
			t.Errorf("phase %d (capacity %.0f/s): goodput ÷ capacity = %.3f, p90 %v; want ≥ 0.95 and ≤ %v", i, c, g/c, p90, p90s[i])
		}
	}
	st := w.p.Stats()
	t.Logf("stats: limit %d, cuts %d, no-load %v, p50 %v, p90 %v, reason %s", st.ConcurrencyLimit, st.ConcurrencyCuts, st.LatencyNoLoad, st.LatencyP50, st.LatencyP90, st.Reason)
}

// A downstream whose servers go 8 → 16 → 4 (8ms a job), 200 workers, a
// ceiling of 3000/s far above it: with a target and with LatencyAuto, the
// pace holds ≥ 0.95 of what the servers serve in each phase, with p90
// under the target (20ms), or under twice the no-load latency.
func TestConcurrencyFollowsTheServers(t *testing.T) {
	t.Parallel()
	const phase, service = 20 * time.Second, 8 * time.Millisecond
	for _, target := range []time.Duration{20 * time.Millisecond, pacer.LatencyAuto} {
		t.Run(fmt.Sprintf("target %v", target), func(t *testing.T) {
			t.Parallel()
			s := &pool{n: serverSteps(phase, 8, 16, 4), service: fixed(service)}
			w := newWorld(t, pacer.Config{Rate: 3000, Burst: 20, LatencyTarget: target}, nil)
			w.workers, w.latency = 200, s.latency
			bound := 2 * service
			if target > 0 {
				bound = target
			}
			checkPhases(t, w, phase, 5*time.Second, []float64{1000, 2000, 500}, []time.Duration{bound, bound, bound})
		})
	}
}

// The downstream's no-load latency doubles (8ms → 16ms a job, the same 8
// servers): the baseline follows it, and the limit is not cut down to a
// trickle.
func TestConcurrencyBaselineDrift(t *testing.T) {
	t.Parallel()
	const phase = 20 * time.Second
	s := &pool{n: serverSteps(phase, 8), service: func(t time.Duration) time.Duration {
		if t < phase {
			return 8 * time.Millisecond
		}
		return 16 * time.Millisecond
	}}
	w := newWorld(t, pacer.Config{Rate: 3000, Burst: 20, LatencyTarget: pacer.LatencyAuto}, nil)
	w.workers, w.latency = 200, s.latency
	checkPhases(t, w, phase, 10*time.Second, []float64{1000, 500}, []time.Duration{16 * time.Millisecond, 32 * time.Millisecond})
	if st := w.p.Stats(); st.LatencyNoLoad < 14*time.Millisecond {
		t.Errorf("no-load latency %v after the service time doubled to 16ms, want it followed", st.LatencyNoLoad)
	}
}

// A noisy downstream (each job 4–12ms, uniform): the limit holds its
// goodput and latency as for a steady one.
func TestConcurrencyNoisyLatency(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	s := &pool{n: serverSteps(time.Hour, 8), service: func(time.Duration) time.Duration {
		return 4*time.Millisecond + time.Duration(rng.Int64N(int64(8*time.Millisecond)))
	}}
	w := newWorld(t, pacer.Config{Rate: 3000, Burst: 20, LatencyTarget: pacer.LatencyAuto}, nil)
	w.workers, w.latency = 200, s.latency
	checkPhases(t, w, 30*time.Second, 5*time.Second, []float64{1000}, []time.Duration{20 * time.Millisecond})
}

// A downstream that is down for 5s (every answer a 429) and then back:
// with no latencies to judge, the learned limit holds through the outage
// (it neither collapses nor grows), and afterwards the goodput is back
// at ≥ 0.95 of the servers' within 5s.
func TestConcurrencyThroughAnOutage(t *testing.T) {
	t.Parallel()
	const service = 8 * time.Millisecond
	s := &pool{n: serverSteps(time.Hour, 8), service: fixed(service)}
	ds := &downstream{capacity: func(t time.Duration) float64 {
		if t >= 10*time.Second && t < 15*time.Second {
			return 0
		}
		return 1e9
	}, burst: 1e9}
	w := newWorld(t, pacer.Config{Rate: 3000, Burst: 20, MinFactor: 0.01, LatencyTarget: pacer.LatencyAuto}, ds)
	w.workers, w.latency = 200, s.latency
	w.run(10 * time.Second)
	before := w.p.Stats().ConcurrencyLimit
	lo, hi := before, before
	for w.now < 15*time.Second {
		w.run(100 * time.Millisecond)
		l := w.p.Stats().ConcurrencyLimit
		lo, hi = min(lo, l), max(hi, l)
	}
	t.Logf("limit %d before the outage, in [%d, %d] during it", before, lo, hi)
	if lo < before/2 || hi > 2*before {
		t.Errorf("limit %d before the outage went to [%d, %d] during it: want it held (within ½–2×)", before, lo, hi)
	}
	w.run(5 * time.Second)
	g, _ := w.phase(15*time.Second, 20*time.Second)
	p90 := w.p90(15*time.Second, 20*time.Second)
	t.Logf("the 5s after the outage: goodput %.1f (%.3f of 1000), p90 %v", g, g/1000, p90)
	if g/1000 < 0.95 || p90 > 2*service {
		t.Errorf("the 5s after the outage: goodput ÷ capacity = %.3f, p90 %v; want ≥ 0.95 and ≤ %v", g/1000, p90, 2*service)
	}
}

// A downstream that queues and also answers 429 past a rate: whichever
// binds, the pacer holds ≥ 0.95 of it with ≤ 2 % of attempts throttled,
// and the latency near the no-load latency. 8 servers × 8ms serve
// 1000/s; the 429s start at 600/s (the rate binds) or at 1500/s (the
// servers do).
func TestConcurrencyAndPushbackTogether(t *testing.T) {
	t.Parallel()
	const service = 8 * time.Millisecond
	for _, limit := range []float64{600, 1500} {
		t.Run(fmt.Sprintf("429 past %v/s", limit), func(t *testing.T) {
			t.Parallel()
			s := &pool{n: serverSteps(time.Hour, 8), service: fixed(service)}
			ds := &downstream{capacity: func(time.Duration) float64 { return limit }, burst: 5}
			w := newWorld(t, pacer.Config{Rate: 3000, Burst: 20, MinFactor: 0.01, LatencyTarget: pacer.LatencyAuto}, ds)
			w.workers, w.latency = 200, s.latency
			w.run(30 * time.Second)
			want := min(limit, 1000)
			g, thr := w.phase(10*time.Second, 30*time.Second)
			p90 := w.p90(10*time.Second, 30*time.Second)
			st := w.p.Stats()
			t.Logf("goodput %.1f (%.3f of %v), throttled %.4f, p90 %v; reason %s, limit %d, pace %.0f", g, g/want, want, thr, p90, st.Reason, st.ConcurrencyLimit, st.Pace)
			if g/want < 0.95 || thr > 0.02 || p90 > 2*service {
				t.Errorf("goodput ÷ %v = %.3f, throttled %.4f, p90 %v; want ≥ 0.95, ≤ 0.02, ≤ %v", want, g/want, thr, p90, 2*service)
			}
		})
	}
}

// MaxInFlight stays the hard bound with and without a learned limit:
// TryAcquire and Acquire refuse n above it, and the learned limit never
// lets more in.
func TestMaxInFlightIsAHardBound(t *testing.T) {
	t.Parallel()
	for _, target := range []time.Duration{0, pacer.LatencyAuto} {
		p, _ := newPacer(t, pacer.Config{Rate: 1000, Burst: 10, MaxInFlight: 2, LatencyTarget: target})
		if pm, ok := p.TryAcquire(5); ok {
			pm.Cancel()
			t.Errorf("latency target %v: TryAcquire(5) with MaxInFlight 2 = ok, want refused", target)
		}
		if _, err := p.Acquire(t.Context(), 5); err == nil {
			t.Errorf("latency target %v: Acquire(5) with MaxInFlight 2 = nil error, want one naming max_in_flight", target)
		}
	}
}

// Permit.Start moves where a job's latency is measured from: a permit
// held 100ms before its job starts, then 8ms of work, is judged 8ms, not
// 108ms, so the no-load latency is the downstream's.
func TestPermitStartMeasuresFromTheJob(t *testing.T) {
	t.Parallel()
	p, clk := newPacer(t, pacer.Config{Rate: 1000, Burst: 100, LatencyTarget: pacer.LatencyAuto})
	for i := 0; i < 200; i++ {
		pm, ok := p.TryAcquire(1)
		if !ok {
			t.Fatalf("job %d: TryAcquire(1) refused with nothing in flight", i)
		}
		clk.Advance(100 * time.Millisecond) // held, waiting for a job
		pm.Start()
		clk.Advance(8 * time.Millisecond)
		pm.Done(nil)
	}
	if st := p.Stats(); st.LatencyNoLoad < 7*time.Millisecond || st.LatencyNoLoad > 9*time.Millisecond {
		t.Errorf("no-load latency %v, want about the 8ms from Start to Done", st.LatencyNoLoad)
	}
}
