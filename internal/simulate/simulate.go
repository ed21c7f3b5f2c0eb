package simulate

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Scenario is a synthetic load: jobs arrive at Arrival(t) per second, and
// the downstream pushes back on a job done at t when Throttle(t, k) says
// so (k counts jobs from 0), asking for the returned retry-after. A
// scenario with Capacity has a downstream that takes Capacity(t) jobs a
// second (a token bucket with a burst of 5) and answers 429, retry after
// 1s, beyond it; Simulate makes its Throttle.
type Scenario struct {
	Name     string
	Arrival  func(t time.Duration, c pacer.Config) float64
	Throttle func(t time.Duration, k int) (time.Duration, bool)
	Capacity func(t time.Duration, c pacer.Config) float64
}

// Scenarios are the names ScenarioByName knows.
const Scenarios = "steady, burst, throttle-storm or moving-capacity"

// ScenarioByName returns a scenario of pacer simulate, timed relative to
// the simulated duration: steady (arrivals at 80 % of the base pace), burst (three
// times the base pace from 20 % to 35 % of the time), throttle-storm
// (arrivals at 150 % of the base pace; from 30 % to 50 % of the time the
// downstream answers three jobs in four with 429, retry after 2 s: a
// storm, which pauses the queue), moving-capacity (arrivals at 120 % of
// the ceiling; a downstream whose capacity, unknown to the pacer, is 40 %,
// 90 %, 15 % and 60 % of the ceiling in four equal phases).
func ScenarioByName(name string) (Scenario, error) {
	switch name {
	case "steady":
		return Scenario{Name: name, Arrival: func(_ time.Duration, c pacer.Config) float64 { return 0.8 * c.Base }}, nil
	case "burst", "throttle-storm", "moving-capacity":
		return Scenario{Name: name}, nil // filled in by Simulate, which knows d
	}
	return Scenario{}, fmt.Errorf("scenario %q: want %s", name, Scenarios)
}

func (s *Scenario) fill(d time.Duration) {
	in := func(t time.Duration, a, b float64) bool {
		return t >= time.Duration(a*float64(d)) && t < time.Duration(b*float64(d))
	}
	switch s.Name {
	case "burst":
		s.Arrival = func(t time.Duration, c pacer.Config) float64 {
			if in(t, 0.2, 0.35) {
				return 3 * c.Base
			}
			return 0.5 * c.Base
		}
	case "throttle-storm":
		s.Arrival = func(_ time.Duration, c pacer.Config) float64 { return 1.5 * c.Base }
		s.Throttle = func(t time.Duration, k int) (time.Duration, bool) {
			return 2 * time.Second, in(t, 0.3, 0.5) && k%4 != 0
		}
	case "moving-capacity":
		s.Arrival = func(_ time.Duration, c pacer.Config) float64 { return 1.2 * c.Rate }
		levels := []float64{0.4, 0.9, 0.15, 0.6}
		s.Capacity = func(t time.Duration, c pacer.Config) float64 {
			return levels[min(int(t*4/d), 3)] * c.Rate
		}
	}
}

// Sample is the state of a simulation at one time.
type Sample struct {
	T         time.Duration
	Arrival   float64 // jobs/s arriving
	Pace      float64 // jobs/s the pacer admits (0 while paused)
	Done      int64   // jobs done so far
	DoneRate  float64 // jobs/s done over the last second
	Ceiling   float64 // jobs/s
	Factor    float64
	Backlog   int64 // jobs waiting
	Arrived   int64
	Throttled int64
	Capacity  float64 // the scenario's downstream capacity, jobs/s; 0 if it has none
	Estimate  float64 // the pacer's estimate of it (Stats.Capacity); 0 while it has none
	Reason    pacer.Reason
}

// Simulate runs a pacer made with c (its Clock and Probe replaced) on a
// simulated clock for d against scenario sc, and returns a sample every
// 250 ms of simulated time. It takes well under a second for minutes of
// simulated time at hundreds of jobs per second.
func Simulate(c pacer.Config, sc Scenario, d time.Duration) ([]Sample, error) {
	if d <= 0 || d > 24*time.Hour {
		return nil, fmt.Errorf("duration %v: want (0, 24h]", d)
	}
	if sc.Arrival == nil {
		sc.fill(d)
	}
	var capacity func(time.Duration) float64
	clock := &simClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	epoch := clock.Now()
	var backlog float64 // jobs waiting, fractional arrivals included
	c.Clock = clock
	c.Probe = pacer.ProbeFunc(func(context.Context) (pacer.Backlog, error) {
		return pacer.Backlog{Pending: int64(backlog)}, nil
	})
	p, err := pacer.New(c)
	if err != nil {
		return nil, err
	}
	cfg, err := c.WithDefaults() // the period and base the pacer runs at
	if err != nil {
		return nil, err
	}
	if sc.Capacity != nil {
		capacity = func(t time.Duration) float64 { return sc.Capacity(t, cfg) }
		const burst = 5
		tokens, at := float64(burst), time.Duration(0)
		sc.Throttle = func(t time.Duration, _ int) (time.Duration, bool) {
			tokens = min(burst, tokens+capacity(t)*(t-at).Seconds())
			at = t
			if tokens >= 1 {
				tokens--
				return 0, false
			}
			return time.Second, true
		}
	}
	ctx := context.Background()
	const every = 250 * time.Millisecond
	var (
		samples          []Sample
		arrived          float64
		last             time.Duration // arrivals integrated up to here
		done, throttled  int64
		k                int
		doneAt           []time.Duration // done times within the last second
		nextStep, nextSm = cfg.Period, time.Duration(0)
	)
	arrive := func(now time.Duration) {
		for last < now {
			step := min(now-last, 10*time.Millisecond)
			n := sc.Arrival(last, cfg) * step.Seconds()
			backlog += n
			arrived += n
			last += step
		}
	}
	for {
		now := clock.Now().Sub(epoch)
		if now > d {
			break
		}
		arrive(now)
		if now >= nextStep {
			p.Step(ctx)
			nextStep += cfg.Period
		}
		if now >= nextSm {
			for len(doneAt) > 0 && doneAt[0] < now-time.Second { // the window [now-1s, now)
				doneAt = doneAt[1:]
			}
			st := p.Stats()
			samples = append(samples, Sample{T: now, Arrival: sc.Arrival(now, cfg), Pace: st.Pace, Done: done,
				DoneRate: float64(len(doneAt)), Ceiling: st.Ceiling, Factor: st.Factor, Backlog: int64(backlog),
				Arrived: int64(arrived), Throttled: throttled, Estimate: st.Capacity, Reason: st.Reason})
			if capacity != nil {
				samples[len(samples)-1].Capacity = capacity(now)
			}
			nextSm += every
		}
		next := min(nextStep, nextSm)
		if backlog < 1 {
			// Idle until the next job arrives or the next event.
			clock.set(epoch.Add(min(next, now+10*time.Millisecond)))
			continue
		}
		if w := p.EstimateWait(1); now+w > next {
			clock.set(epoch.Add(next)) // the wait would pass an event: do that first
			continue
		}
		pm, err := p.Acquire(ctx, 1)
		if err != nil {
			return nil, err
		}
		now = clock.Now().Sub(epoch)
		arrive(now)
		backlog--
		var out error
		if sc.Throttle != nil {
			if ra, ok := sc.Throttle(now, k); ok {
				out = pacer.Throttle(ra, nil)
				backlog++ // the job goes back to the queue
				throttled++
			}
		}
		k++
		if out == nil {
			done++
			doneAt = append(doneAt, now)
		}
		pm.Done(out)
	}
	return samples, nil
}

// simClock is a pacer.Clock for one goroutine whose timers fire at once,
// moving the time forward to their due time.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

func (c *simClock) NewTimer(d time.Duration) pacer.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return simTimer{ch}
}

type simTimer struct{ ch chan time.Time }

func (t simTimer) C() <-chan time.Time { return t.ch }
func (t simTimer) Stop() bool          { return false }

// WriteCSV writes samples to a CSV file at path, one row a sample.
func WriteCSV(path string, samples []Sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"t_s", "arrival_per_s", "pace_per_s", "done_per_s", "ceiling_per_s", "factor", "backlog_jobs", "arrived", "done", "throttled",
		"capacity_per_s", "estimated_capacity_per_s", "reason"})
	ff := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, s := range samples {
		_ = w.Write([]string{ff(s.T.Seconds()), ff(s.Arrival), ff(s.Pace), ff(s.DoneRate), ff(s.Ceiling), ff(math.Round(s.Factor*1000) / 1000),
			strconv.FormatInt(s.Backlog, 10), strconv.FormatInt(s.Arrived, 10), strconv.FormatInt(s.Done, 10), strconv.FormatInt(s.Throttled, 10),
			ff(s.Capacity), ff(math.Round(s.Estimate*1000) / 1000), string(s.Reason)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
