package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// job is a unit of the endless backlog; retries holds the throttled ones
// until their retry-after.
type backlog struct {
	mu      sync.Mutex
	retries []time.Time
}

// next returns true if a throttled job is due for its retry (and takes
// it), else a new job is taken: the backlog never ends.
func (b *backlog) next() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.retries) > 0 && !b.retries[0].After(time.Now()) {
		b.retries = b.retries[1:]
	}
}

func (b *backlog) retryAt(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.retries = append(b.retries, t)
}

// runMoving drives one contender against its own moving downstream.
func runMoving(ctx context.Context, l limiter, start time.Time, level func(time.Duration) float64, s *series, wg *sync.WaitGroup) {
	ds := &bucketDS{start: start, level: level, tokens: *burst}
	bl := &backlog{}
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				bl.next()
				done, err := l.acquire(ctx)
				if err != nil {
					return
				}
				ok := ds.admit()
				time.Sleep(*latency)
				var outcome error
				if !ok {
					outcome = pacer.Throttle(time.Second, throttleErr{})
					bl.retryAt(time.Now().Add(time.Second))
				}
				done(outcome)
				s.record(ok, 0)
			}
		}()
	}
	if l.stats != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(bin)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					st := l.stats()
					i := int(now.Sub(start) / bin)
					if i < len(s.pace) {
						s.pace[i].Store(int64(st.Pace * 1000))
					}
					if *trace && i%2 == 1 {
						fmt.Fprintf(os.Stderr, "%6.2fs pace %7.1f good %7.1f capacity %7.1f reason %-8s cuts %4d pauses %3d throttled %5d\n",
							now.Sub(start).Seconds(), st.Pace, st.Goodput, st.Capacity, st.Reason, st.Cuts, st.Pauses, st.Throttled)
					}
				}
			}
		}()
	}
}

func moving(levels []float64) {
	total := *phase * time.Duration(len(levels))
	level := func(t time.Duration) float64 { return levels[min(int(t / *phase), len(levels)-1)] }
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	start := time.Now()
	ls := []limiter{
		static(), awsAdaptive(),
		pacerLimiter(ctx, pacer.Config{Rate: *ceiling, Burst: float64(*ceilingB), MinFactor: 0.01}),
	}
	ss := make([]*series, len(ls))
	var wg sync.WaitGroup
	for i, l := range ls {
		ss[i] = newSeries(start, total)
		runMoving(ctx, l, start, level, ss[i], &wg)
	}
	fmt.Printf("moving capacity: %d workers each, ceiling %g/s (burst %d), downstream burst %g, answer in %v, Retry-After 1s; each phase %v, its first %v left out; load average %s\n\n",
		*workers, *ceiling, *ceilingB, *burst, *latency, *phase, *settle, loadavg())
	wg.Wait()

	fmt.Printf("%-6s %9s", "phase", "capacity")
	for _, l := range ls {
		fmt.Printf(" | %-24s", l.name)
	}
	fmt.Printf(" | %s\n%-6s %9s", "pacer÷aws", "", "jobs/s")
	for range ls {
		fmt.Printf(" | %11s %12s", "good÷cap", "thr÷attempts")
	}
	fmt.Printf(" | %s\n", "goodput")
	worst := [2]float64{math.Inf(1), 0}
	for i, c := range levels {
		from, to := time.Duration(i)**phase+*settle, time.Duration(i+1)**phase
		fmt.Printf("%-6d %9g", i+1, c)
		var goods []float64
		for k, s := range ss {
			g, thr := s.over(from, to)
			goods = append(goods, g)
			fmt.Printf(" | %11.3f %12.4f", g/c, thr)
			if ls[k].name == "pacer" {
				worst[0], worst[1] = min(worst[0], g/c), max(worst[1], thr)
			}
		}
		fmt.Printf(" | %8.2f×\n", goods[2]/goods[1])
	}
	verdict := "met"
	if worst[0] < 0.95 || worst[1] > 0.02 {
		verdict = "NOT met"
	}
	fmt.Printf("\nload average at the end: %s", loadavg())
	fmt.Printf("\npacer, worst phase: goodput ÷ capacity %.3f, throttled ÷ attempts %.4f (target ≥ 0.95 and ≤ 0.02: %s)\n\n", worst[0], worst[1], verdict)
	if *csvPath != "" {
		if err := writeCSV(*csvPath, ls, ss, level, total); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if *svgPath != "" {
		if err := writeSVG(*svgPath, ls, ss, level, total); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("wrote %s\n\n", *svgPath)
	}
}
