package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// The "servers" scenario's downstream is testenv.QueueingDownstream: n
// real servers, a FIFO queue in front of them, and a real sleep of the
// service time per job. Nothing is computed: timer lateness, the
// scheduler and the machine's load are in its figures, as they are in a
// user's.

// noLoadLatency measures a job's latency on an idle downstream: the
// median of 50 jobs one at a time.
func noLoadLatency(service time.Duration) time.Duration {
	d := &testenv.QueueingDownstream{Servers: 1, Service: service}
	l := make([]time.Duration, 50)
	for i := range l {
		start := time.Now()
		_ = d.Call()
		l[i] = time.Since(start)
	}
	sortDur(l)
	return l[len(l)/2]
}

func sortDur(l []time.Duration) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j] < l[j-1]; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// serversScenario runs the contenders side by side, each against its own
// real downstream whose server count steps through -server-steps, with
// -latency-workers workers each and an endless backlog. Per phase, past
// its first -settle: goodput ÷ what the saturated downstream served (the
// static limit at the ceiling, which keeps every worker's job inside the
// downstream), and the 90th percentile latency.
func serversScenario() {
	var steps []int
	for _, f := range strings.Split(*serverSteps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Printf("capacity: -server-steps: %q: want a server count ≥ 1\n", f)
			return
		}
		steps = append(steps, n)
	}
	noLoad := noLoadLatency(*service)
	total := *phase * time.Duration(len(steps))
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	start := time.Now()
	vg := newVegas()
	ls := []limiter{static()}
	vlim := rate.NewLimiter(rate.Limit(*ceiling), *ceilingB)
	ls = append(ls, limiter{name: "vegas", acquire: func(ctx context.Context) (func(error), error) {
		if err := vlim.Wait(ctx); err != nil {
			return nil, err
		}
		return vg.acquire(ctx)
	}})
	tgt := pacerLimiter(ctx, pacer.Config{Rate: *ceiling, Burst: float64(*ceilingB), LatencyTarget: *target})
	tgt.name = "pacer " + target.String()
	auto := pacerLimiter(ctx, pacer.Config{Rate: *ceiling, Burst: float64(*ceilingB), LatencyTarget: pacer.LatencyAuto})
	auto.name = "pacer auto"
	ls = append(ls, tgt, auto)
	go func() { <-ctx.Done(); vg.stop() }()

	ss := make([]*series, len(ls))
	dss := make([]*testenv.QueueingDownstream, len(ls))
	var wg sync.WaitGroup
	for i, l := range ls {
		ss[i] = newSeries(start, total)
		ds := &testenv.QueueingDownstream{Servers: steps[0], Service: *service}
		dss[i] = ds
		drive(ctx, &wg, l, ss[i], func() { _ = ds.Call() })
	}
	if *trace {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(500 * time.Millisecond)
				for _, l := range ls {
					if l.stats != nil {
						st := l.stats()
						fmt.Fprintf(os.Stderr, "%6.1fs %-12s limit %3d cuts %4d no-load %v mean %v p90 %v in flight %d\n", time.Since(start).Seconds(), l.name,
							st.ConcurrencyLimit, st.ConcurrencyCuts, st.LatencyNoLoad.Round(10*time.Microsecond), st.LatencyMean.Round(10*time.Microsecond), st.LatencyP90.Round(10*time.Microsecond), st.InFlight)
					}
				}
			}
		}()
	}
	for k := 1; k < len(steps); k++ {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(start.Add(time.Duration(k) * *phase))):
			for _, d := range dss {
				d.SetServers(steps[k])
			}
		}
	}
	wg.Wait()

	fmt.Printf("servers: real servers (a FIFO semaphore, a real %v sleep a job), counts %v for %v each, the first %v of each left out; %d workers a contender, endless backlog, ceiling %g/s; pacer's target %v; no-load latency %v (load %s)\n\n",
		*service, steps, *phase, *settle, *lworkers, *ceiling, *target, noLoad.Round(10*time.Microsecond), loadavg())
	fmt.Printf("%-14s", "")
	for k, n := range steps {
		fmt.Printf(" | %2d servers: %8s %8s", n, "good÷sat", "p90")
		_ = k
	}
	fmt.Println()
	sat := make([]float64, len(steps))
	for k := range steps {
		from, to := time.Duration(k)**phase+*settle, time.Duration(k+1)**phase
		sat[k], _ = ss[0].over(from, to)
	}
	worst := map[string][2]float64{} // least ratio, most p90 ÷ no-load
	for i, l := range ls {
		fmt.Printf("%-14s", l.name)
		w := [2]float64{math.Inf(1), 0}
		for k, n := range steps {
			from, to := time.Duration(k)**phase+*settle, time.Duration(k+1)**phase
			g, _ := ss[i].over(from, to)
			p90 := ss[i].p90(from, to)
			fmt.Printf(" | %2d servers: %8.3f %8v", n, g/sat[k], p90.Round(100*time.Microsecond))
			w[0] = min(w[0], g/sat[k])
			w[1] = max(w[1], float64(p90)/float64(noLoad))
		}
		worst[l.name] = w
		fmt.Println()
	}
	fmt.Println()
	for _, name := range []string{tgt.name, auto.name, "vegas"} {
		w := worst[name]
		fmt.Printf("%-14s worst phase: goodput %.3f of saturated, p90 %.2f × no-load\n", name, w[0], w[1])
	}
	if *serversSVG != "" {
		if err := writeServersSVG(*serversSVG, ls, ss, total, noLoad); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("\nwrote %s\n", *serversSVG)
	}
}
