package simulate

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Scenario is a synthetic load: jobs arrive at Arrival(t) per second, and
// the downstream pushes back on a job dispatched at t when Throttle(t, k)
// says so (k counts jobs from 0), asking for the returned retry-after. A
// scenario with Capacity has a downstream that takes Capacity(t) jobs a
// second (a token bucket with a burst of 5) and answers 429, retry after
// 1s, beyond it; Simulate makes its Throttle. A scenario with Servers has
// a downstream that queues instead of refusing: n servers, each taking one
// job at a time for service, and a FIFO queue in front of them; a job is
// done when its server finishes it, its latency its wait plus its service
// time. Without Servers every job is done the moment it is dispatched. A
// job Throttle refuses is answered at once and takes no server. Marks are
// the spans SVG shades and labels (a burst, a storm, a phase).
type Scenario struct {
	Name     string
	Arrival  func(t time.Duration, c pacer.Config) float64
	Throttle func(t time.Duration, k int) (time.Duration, bool)
	Capacity func(t time.Duration, c pacer.Config) float64
	Servers  func(t time.Duration, c pacer.Config) (n int, service time.Duration)
	Marks    []Mark
}

// Mark is a span of simulated time that SVG shades and labels.
type Mark struct {
	From, To time.Duration
	Label    string
}

// ScenarioInfo names a scenario of ScenarioByName and says what it does.
type ScenarioInfo struct {
	Name string
	Doc  string
}

// ScenarioInfos are the scenarios ScenarioByName knows, in the order
// --help lists them. Times are shares of the simulated duration; paces
// are shares of the worker's base pace or ceiling (rate).
var ScenarioInfos = []ScenarioInfo{
	{"steady", "arrivals at 80 % of the base pace: the factor stays 1 and every job is done as it arrives"},
	{"burst", "arrivals at 50 % of the base pace, and three times the base pace from 20 % to 35 % of the time: the factor rises with the backlog, up to the ceiling, and the backlog drains"},
	{"throttle-storm", "arrivals at 150 % of the base pace; from 30 % to 50 % of the time the downstream answers three jobs in four with 429, retry after 2 s: a storm, which pauses the worker and cuts the pace"},
	{"moving-capacity", "arrivals at 120 % of the ceiling; a downstream that answers 429 past a capacity nobody configured: 40 %, 90 %, 15 % and 60 % of the ceiling in four equal phases; the pace finds each one"},
	{"queueing", "arrivals at 120 % of the ceiling; a downstream that queues instead of refusing: 8, then 16, then 4 servers in three equal phases, each job taking the time that makes 8 servers serve 40 % of the ceiling (16 serve 80 %, 4 serve 20 %); the learned concurrency limit (latency_target; never past max_in_flight) holds the jobs in flight to what the servers serve. A worker without latency_target runs with latency_target = \"auto\" here"},
}

// Scenarios are the names ScenarioByName knows.
const Scenarios = "steady, burst, throttle-storm, moving-capacity or queueing"

// ScenarioByName returns a scenario of pacer simulate, timed relative to
// the simulated duration; ScenarioInfos says what each one does.
func ScenarioByName(name string) (Scenario, error) {
	switch name {
	case "steady":
		return Scenario{Name: name, Arrival: func(_ time.Duration, c pacer.Config) float64 { return 0.8 * c.Base }}, nil
	case "burst", "throttle-storm", "moving-capacity", "queueing":
		return Scenario{Name: name}, nil // filled in by Simulate, which knows d
	}
	return Scenario{}, fmt.Errorf("scenario %q: want %s", name, Scenarios)
}

// Queueing servers: 8, 16 and 4 in three equal phases; 8 serve
// queueingShare of the ceiling.
var queueingServers = []int{8, 16, 4}

const queueingShare = 0.4

// Config returns the pacer.Config Simulate runs sc with for c: c itself,
// but for a scenario whose downstream queues when c sets no
// LatencyTarget: then LatencyTarget is pacer.LatencyAuto, so that the
// run shows the learned concurrency limit.
func (s Scenario) Config(c pacer.Config) pacer.Config {
	if (s.Servers != nil || s.Name == "queueing" && s.Arrival == nil) && c.LatencyTarget == 0 {
		c.LatencyTarget = pacer.LatencyAuto
	}
	return c
}

// Timed returns s timed for a run of d: a named scenario whose times are
// shares of the run (all but steady) gets its functions and Marks. A
// scenario with an Arrival comes back as it is. Simulate calls it.
func (s Scenario) Timed(d time.Duration) Scenario {
	if s.Arrival == nil {
		s.fill(d)
	}
	return s
}

func (s *Scenario) fill(d time.Duration) {
	at := func(a float64) time.Duration { return time.Duration(a * float64(d)) }
	in := func(t time.Duration, a, b float64) bool { return t >= at(a) && t < at(b) }
	switch s.Name {
	case "burst":
		s.Arrival = func(t time.Duration, c pacer.Config) float64 {
			if in(t, 0.2, 0.35) {
				return 3 * c.Base
			}
			return 0.5 * c.Base
		}
		s.Marks = []Mark{{at(0.2), at(0.35), "burst: 3 × base"}}
	case "throttle-storm":
		s.Arrival = func(_ time.Duration, c pacer.Config) float64 { return 1.5 * c.Base }
		s.Throttle = func(t time.Duration, k int) (time.Duration, bool) {
			return 2 * time.Second, in(t, 0.3, 0.5) && k%4 != 0
		}
		s.Marks = []Mark{{at(0.3), at(0.5), "storm: 3 in 4 jobs 429, retry after 2 s"}}
	case "moving-capacity":
		s.Arrival = func(_ time.Duration, c pacer.Config) float64 { return 1.2 * c.Rate }
		levels := []float64{0.4, 0.9, 0.15, 0.6}
		s.Capacity = func(t time.Duration, c pacer.Config) float64 {
			return levels[min(int(t*4/d), 3)] * c.Rate
		}
	case "queueing":
		s.Arrival = func(_ time.Duration, c pacer.Config) float64 { return 1.2 * c.Rate }
		n := len(queueingServers)
		s.Servers = func(t time.Duration, c pacer.Config) (int, time.Duration) {
			service := time.Duration(float64(queueingServers[0]) / (queueingShare * c.Rate) * float64(time.Second))
			return queueingServers[min(int(t*time.Duration(n)/d), n-1)], service
		}
		for i, k := range queueingServers {
			s.Marks = append(s.Marks, Mark{d * time.Duration(i) / time.Duration(n), d * time.Duration(i+1) / time.Duration(n), fmt.Sprintf("%d servers", k)})
		}
	}
}

// Sample is the state of a simulation at one time. The rates over the
// last second (DoneRate, ThrottledRate) and DoneP90 cover the window
// [T−1s, T).
type Sample struct {
	T             time.Duration
	Arrival       float64 // jobs/s arriving
	Pace          float64 // jobs/s the pacer admits (0 while paused)
	Done          int64   // jobs done so far
	DoneRate      float64 // jobs/s done over the last second
	Ceiling       float64 // jobs/s
	Factor        float64
	Backlog       int64 // jobs waiting
	Arrived       int64
	Throttled     int64   // jobs answered 429 so far
	ThrottledRate float64 // jobs/s answered 429 over the last second
	Capacity      float64 // the scenario's downstream capacity, jobs/s (for servers: servers ÷ service time); 0 if it has none
	Estimate      float64 // the pacer's estimate of it (Stats.Capacity); 0 while it has none
	Reason        pacer.Reason
	// The downstream that queues (Scenario.Servers): its servers now, and
	// the jobs in flight (dispatched and not yet done: in service or in
	// its queue). 0 for a scenario without servers.
	Servers  int
	InFlight int64
	// DoneP90 is the 90th percentile latency (dispatch to done) of the
	// jobs done over the last second, as the simulated downstream
	// measures it; 0 if none was done, or without servers.
	DoneP90 time.Duration
	// ConcurrencyLimit, LatencyNoLoad, LatencyMean and LatencyP90 are the
	// pacer's learned concurrency limit and the latencies it judges it by
	// (pacer.Stats); 0 while it has none or the limit is off.
	ConcurrencyLimit                       int
	LatencyNoLoad, LatencyMean, LatencyP90 time.Duration
}

// Simulate runs a pacer made with sc.Config(c) (its Clock and Probe
// replaced) on a simulated clock for d against scenario sc, and returns a
// sample every 250 ms of simulated time. It is an event simulation on one
// goroutine: the clock jumps to the next event (a job arriving, a job
// done, the pace admitting the next job, a controller Step, a sample), and
// jobs are dispatched with TryAcquire. It takes well under a second for
// minutes of simulated time at hundreds of jobs per second. c must have no
// Limiter (a Limiter waits on its own clock).
func Simulate(c pacer.Config, sc Scenario, d time.Duration) ([]Sample, error) {
	if d <= 0 || d > 24*time.Hour {
		return nil, fmt.Errorf("duration %v: want (0, 24h]", d)
	}
	if c.Limiter != nil {
		return nil, fmt.Errorf("config Limiter %T: want nil: a simulation runs the worker's own pacer, without a fleet limit", c.Limiter)
	}
	c = sc.Config(c)
	sc = sc.Timed(d)
	if sc.Arrival == nil {
		return nil, fmt.Errorf("scenario %q: Arrival is nil: want a function of the time", sc.Name)
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
	var servers *pool
	if sc.Servers != nil {
		servers = &pool{}
		capacity = func(t time.Duration) float64 {
			n, service := sc.Servers(t, cfg)
			return float64(n) / service.Seconds()
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
		doneAt, thrAt    []time.Duration // done and throttled times within the last second
		lat              []time.Duration // latencies of the jobs in doneAt
		busy             jobs            // dispatched, not yet done
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
	finish := func(j job) {
		if j.out == nil {
			done++
			doneAt = append(doneAt, j.done)
			lat = append(lat, j.done-j.sent)
		} else {
			backlog++ // the job goes back to the queue
			throttled++
			thrAt = append(thrAt, j.done)
		}
		j.pm.Done(j.out)
	}
	for {
		now := clock.Now().Sub(epoch)
		if now > d {
			break
		}
		arrive(now)
		for len(busy) > 0 && busy[0].done <= now {
			finish(heap.Pop(&busy).(job))
		}
		if now >= nextStep {
			p.Step(ctx)
			nextStep += cfg.Period
		}
		// Dispatch what the pacer admits now.
		for backlog >= 1 {
			pm, ok := p.TryAcquire(1)
			if !ok {
				break
			}
			backlog--
			j := job{pm: pm, sent: now, done: now}
			if sc.Throttle != nil {
				if ra, ok := sc.Throttle(now, k); ok {
					j.out = pacer.Throttle(ra, nil)
				}
			}
			k++
			if servers != nil && j.out == nil {
				n, service := sc.Servers(now, cfg)
				j.done = servers.finish(now, n, service)
			}
			if j.done <= now {
				finish(j)
			} else {
				heap.Push(&busy, j)
			}
		}
		if now >= nextSm {
			for len(doneAt) > 0 && doneAt[0] < now-time.Second { // the window [now-1s, now)
				doneAt, lat = doneAt[1:], lat[1:]
			}
			for len(thrAt) > 0 && thrAt[0] < now-time.Second {
				thrAt = thrAt[1:]
			}
			n := len(doneAt)
			for n > 0 && doneAt[n-1] >= now { // done at now: in the next window
				n--
			}
			nthr := len(thrAt)
			for nthr > 0 && thrAt[nthr-1] >= now {
				nthr--
			}
			st := p.Stats()
			sm := Sample{T: now, Arrival: sc.Arrival(now, cfg), Pace: st.Pace, Done: done,
				DoneRate: float64(n), Ceiling: st.Ceiling, Factor: st.Factor, Backlog: int64(backlog),
				Arrived: int64(arrived), Throttled: throttled, ThrottledRate: float64(nthr), Estimate: st.Capacity, Reason: st.Reason,
				ConcurrencyLimit: st.ConcurrencyLimit, LatencyNoLoad: st.LatencyNoLoad, LatencyMean: st.LatencyMean, LatencyP90: st.LatencyP90}
			if capacity != nil {
				sm.Capacity = capacity(now)
			}
			if servers != nil {
				sm.Servers, _ = sc.Servers(now, cfg)
				sm.InFlight = int64(len(busy))
				sm.DoneP90 = p90(lat[:n])
			}
			samples = append(samples, sm)
			nextSm += every
		}
		// The next event.
		next := min(nextStep, nextSm)
		if len(busy) > 0 {
			next = min(next, busy[0].done)
		}
		if backlog < 1 {
			next = min(next, now+10*time.Millisecond) // the next job arrives
		} else if w := p.EstimateWait(1); w > 0 {
			next = min(next, now+w) // the pace's next job
		} else if lim := cmp.Or(p.Stats().ConcurrencyLimit, cfg.MaxInFlight); lim == 0 || len(busy) < lim {
			// Neither the pace nor a slot holds dispatch: a wait that
			// rounds to 0 while TryAcquire fails. (A slot frees when the
			// next job is done.)
			next = min(next, now+time.Microsecond)
		}
		clock.set(epoch.Add(next))
	}
	return samples, nil
}

// job is a job dispatched to the simulated downstream.
type job struct {
	pm         *pacer.Permit
	sent, done time.Duration
	out        error
}

// jobs is a min-heap of jobs by the time they are done.
type jobs []job

func (h jobs) Len() int           { return len(h) }
func (h jobs) Less(i, j int) bool { return h[i].done < h[j].done }
func (h jobs) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *jobs) Push(x any)        { *h = append(*h, x.(job)) }
func (h *jobs) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// pool is a downstream of servers with a FIFO queue: a job sent at now
// waits for the first server free, and is done a service time later.
type pool struct {
	free []time.Duration // when each server is next free
}

// finish returns when a job sent at now, with n servers of the given
// service time, is done.
func (s *pool) finish(now time.Duration, n int, service time.Duration) time.Duration {
	for len(s.free) < n {
		s.free = append(s.free, now)
	}
	if len(s.free) > n {
		// Servers leave once they finish what they hold: keep the n
		// that are free soonest.
		slices.Sort(s.free)
		s.free = s.free[:n]
	}
	i := 0
	for k := range s.free {
		if s.free[k] < s.free[i] {
			i = k
		}
	}
	s.free[i] = max(now, s.free[i]) + service
	return s.free[i]
}

// p90 returns the 90th percentile of l, 0 if l is empty.
func p90(l []time.Duration) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[(len(s)*9+9)/10-1] // the nearest rank, ⌈0.9 n⌉
}
