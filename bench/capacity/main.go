// Command capacity runs pacer, the AWS SDK for Go v2's adaptive retry
// mode and a static limit side by side against simulated downstreams, in
// one run and in real time, and prints per phase how much of the
// downstream's capacity each got through and how many attempts were
// throttled.
//
// Scenario "moving": a downstream admitting C(t) jobs a second (a token
// bucket with a small burst) and answering 429 (Retry-After: 1s) beyond
// it, C(t) stepping through -levels; -workers workers per contender with an
// endless backlog; a ceiling (-ceiling) well above every level. A
// throttled job is retried after its retry-after, through the limiter
// again. Each contender gets its own downstream, all on one schedule.
//
// Scenario "latency": a downstream of -servers servers with a FIFO queue
// (-service each), which never answers 429 but slows down as its queue
// grows; a static limit at the ceiling beside pacer with
// Config.LatencyTarget.
//
//	go run ./bench/capacity [-phase 20s] [-levels 100,500,50,250] [-svg docs/capacity.svg]
//
// Long on purpose: serversScenario. A bench's run reads top to bottom as the
// script of what it measures (set up, load, measure, print), in the order
// the output shows.
package main

//go:generate go run . -scenario moving -svg ../../docs/capacity.svg
//go:generate go run . -scenario servers -service 8ms -target 20ms -ceiling 3000 -servers-svg ../../docs/concurrency.svg

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"golang.org/x/time/rate"

	"github.com/jobpacer/pacer/pacer"
)

var (
	phase       = flag.Duration("phase", 20*time.Second, "length of each capacity level")
	levelsF     = flag.String("levels", "100,500,50,250", "the downstream's capacity in each phase, jobs per second")
	settle      = flag.Duration("settle", 5*time.Second, "the start of each phase left out of its figures")
	ceiling     = flag.Float64("ceiling", 2000, "the ceiling every contender is held to, jobs per second")
	ceilingB    = flag.Int("ceiling-burst", 5, "the ceiling's burst, jobs, the same for every contender")
	workers     = flag.Int("workers", 20, "workers per contender")
	burst       = flag.Float64("burst", 5, "the downstream's burst, jobs")
	latency     = flag.Duration("latency", 5*time.Millisecond, "the downstream's answer time")
	servers     = flag.Int("servers", 4, "latency scenario: the downstream's servers")
	service     = flag.Duration("service", 10*time.Millisecond, "latency scenario: each job's service time")
	target      = flag.Duration("target", 50*time.Millisecond, "latency scenario: pacer's LatencyTarget")
	latFor      = flag.Duration("latency-for", 30*time.Second, "latency scenario: how long it runs")
	latSkip     = flag.Duration("latency-settle", 10*time.Second, "latency scenario: the start left out of its figures")
	lworkers    = flag.Int("latency-workers", 200, "latency scenario: workers per contender")
	svgPath     = flag.String("svg", "", "write the moving scenario's picture to this SVG file")
	csvPath     = flag.String("csv", "", "write the moving scenario's series (per 250ms) to this CSV file")
	only        = flag.String("scenario", "moving,latency,servers", "scenarios to run")
	serverSteps = flag.String("server-steps", "8,16,4", "servers scenario: the downstream's server count in each phase")
	serversSVG  = flag.String("servers-svg", "", "write the servers scenario's picture to this SVG file")
	trace       = flag.Bool("trace", false, "print pacer's Stats every half second to stderr")
)

const bin = 250 * time.Millisecond // the picture's resolution

// throttleErr is the downstream's 429. Its ErrorCode makes the AWS SDK's
// adaptive mode see a throttle; pacer sees the *pacer.Throttled around it.
type throttleErr struct{}

func (throttleErr) Error() string     { return "429 Too Many Requests" }
func (throttleErr) ErrorCode() string { return "ThrottlingException" }

// bucketDS is the moving downstream: a token bucket on the real clock whose
// rate follows the schedule.
type bucketDS struct {
	mu     sync.Mutex
	start  time.Time
	level  func(time.Duration) float64
	tokens float64
	last   time.Duration
}

func (d *bucketDS) admit() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := time.Since(d.start)
	d.tokens = min(*burst, d.tokens+d.level(t)*(t-d.last).Seconds())
	d.last = t
	if d.tokens >= 1 {
		d.tokens--
		return true
	}
	return false
}

// queueDS is the latency downstream: n servers, FIFO; a job's answer comes
// when a server has served it. The schedule is computed, so timer
// lateness does not lower the servers' capacity.
type queueDS struct {
	mu   sync.Mutex
	free []time.Time
}

func (q *queueDS) serve() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := 0
	for k := range q.free {
		if q.free[k].Before(q.free[i]) {
			i = k
		}
	}
	start := time.Now()
	if q.free[i].After(start) {
		start = q.free[i]
	}
	q.free[i] = start.Add(*service)
	return q.free[i]
}

// limiter is one contender: acquire waits for the right to make one
// attempt and returns the function that reports its outcome.
type limiter struct {
	name    string
	acquire func(ctx context.Context) (func(error), error)
	stats   func() pacer.Stats // pacer only
}

func static() limiter {
	l := rate.NewLimiter(rate.Limit(*ceiling), *ceilingB)
	return limiter{name: "static", acquire: func(ctx context.Context) (func(error), error) {
		return func(error) {}, l.Wait(ctx)
	}}
}

func awsAdaptive() limiter {
	l := rate.NewLimiter(rate.Limit(*ceiling), *ceilingB)
	am := retry.NewAdaptiveMode()
	return limiter{name: "aws adaptive", acquire: func(ctx context.Context) (func(error), error) {
		if err := l.Wait(ctx); err != nil {
			return nil, err
		}
		release, err := am.GetAttemptToken(ctx)
		if err != nil {
			return nil, err
		}
		return func(outcome error) { _ = release(outcome) }, nil
	}}
}

func pacerLimiter(ctx context.Context, c pacer.Config) limiter {
	p, err := pacer.New(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() { _ = p.Run(ctx) }()
	return limiter{name: "pacer", stats: p.Stats, acquire: func(ctx context.Context) (func(error), error) {
		pm, err := p.Acquire(ctx, 1)
		if err != nil {
			return nil, err
		}
		return pm.Done, nil
	}}
}

// series counts outcomes per bin, and latencies.
type series struct {
	start     time.Time
	ok, thr   []atomic.Int64
	pace      []atomic.Int64 // pacer's pace ×1000 at the bin's end, or 0
	mu        sync.Mutex
	latencies []latSample
}

type latSample struct {
	at time.Duration
	d  time.Duration
}

func newSeries(start time.Time, d time.Duration) *series {
	n := int(d/bin) + 2
	return &series{start: start, ok: make([]atomic.Int64, n), thr: make([]atomic.Int64, n), pace: make([]atomic.Int64, n)}
}

func (s *series) record(ok bool, lat time.Duration) {
	at := time.Since(s.start)
	i := int(at / bin)
	if i >= len(s.ok) {
		return
	}
	if ok {
		s.ok[i].Add(1)
	} else {
		s.thr[i].Add(1)
	}
	if lat > 0 {
		s.mu.Lock()
		s.latencies = append(s.latencies, latSample{at, lat})
		s.mu.Unlock()
	}
}

// over returns goodput (per second) and throttled ÷ attempts over [from, to).
func (s *series) over(from, to time.Duration) (good, thrShare float64) {
	var ok, thr int64
	for i := int(from / bin); i < int(to/bin) && i < len(s.ok); i++ {
		ok += s.ok[i].Load()
		thr += s.thr[i].Load()
	}
	if ok+thr == 0 {
		return 0, 0
	}
	return float64(ok) / (to - from).Seconds(), float64(thr) / float64(ok+thr)
}

func (s *series) p90(from, to time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l []time.Duration
	for _, x := range s.latencies {
		if x.at >= from && x.at < to {
			l = append(l, x.d)
		}
	}
	if len(l) == 0 {
		return 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)*9/10]
}

func latencyScenario() {
	capacity := float64(*servers) / service.Seconds()
	ctx, cancel := context.WithTimeout(context.Background(), *latFor)
	defer cancel()
	start := time.Now()
	ls := []limiter{
		static(),
		pacerLimiter(ctx, pacer.Config{Rate: *ceiling, Burst: float64(*ceilingB), MinFactor: 0.01, LatencyTarget: *target}),
	}
	ss := make([]*series, len(ls))
	var wg sync.WaitGroup
	for i, l := range ls {
		ss[i] = newSeries(start, *latFor)
		ds := &queueDS{free: make([]time.Time, *servers)}
		drive(ctx, &wg, l, ss[i], func() { time.Sleep(time.Until(ds.serve())) })
	}
	wg.Wait()
	fmt.Printf("latency: %d servers × %v (capacity %g/s), a FIFO queue, no 429; %d workers each, ceiling %g/s; pacer's LatencyTarget %v; %v, the first %v left out\n\n",
		*servers, *service, capacity, *lworkers, *ceiling, *target, *latFor, *latSkip)
	fmt.Printf("%-8s %9s %9s\n", "", "good÷cap", "p90")
	for i, l := range ls {
		g, _ := ss[i].over(*latSkip, *latFor)
		fmt.Printf("%-8s %9.3f %9v\n", l.name, g/capacity, ss[i].p90(*latSkip, *latFor).Round(time.Millisecond))
	}
	g, _ := ss[1].over(*latSkip, *latFor)
	p90 := ss[1].p90(*latSkip, *latFor)
	verdict := "met"
	if p90 >= *target || g/capacity < 0.9 {
		verdict = "NOT met"
	}
	fmt.Printf("\npacer: p90 %v under the target %v and goodput ≥ 0.9 of capacity: %s\n", p90.Round(time.Millisecond), *target, verdict)
}

// drive starts -latency-workers workers for l, each taking a job (the
// backlog is endless) as soon as l admits one, calling the downstream
// with call, and recording its latency in s, until ctx ends.
func drive(ctx context.Context, wg *sync.WaitGroup, l limiter, s *series, call func()) {
	for range *lworkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				done, err := l.acquire(ctx)
				if err != nil {
					return
				}
				sent := time.Now()
				call()
				done(nil)
				s.record(true, time.Since(sent))
			}
		}()
	}
}

// loadavg returns the machine's load averages (1, 5, 15 min), or "?": a
// real-time bench on a shared machine is only as steady as the machine.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func main() {
	flag.Parse()
	var levels []float64
	for _, f := range strings.Split(*levelsF, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || v >= *ceiling {
			fmt.Fprintf(os.Stderr, "capacity: -levels: %q: want a rate > 0 and under the ceiling (%g)\n", f, *ceiling)
			os.Exit(2)
		}
		levels = append(levels, v)
	}
	if *settle >= *phase {
		fmt.Fprintln(os.Stderr, errors.New("capacity: -settle must be shorter than -phase"))
		os.Exit(2)
	}
	for _, sc := range strings.Split(*only, ",") {
		switch strings.TrimSpace(sc) {
		case "moving":
			moving(levels)
		case "latency":
			latencyScenario()
		case "servers":
			serversScenario()
		default:
			fmt.Fprintf(os.Stderr, "capacity: -scenario: %q: want moving, latency or servers\n", sc)
			os.Exit(2)
		}
	}
}
