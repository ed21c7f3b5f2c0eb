// Command asynq measures what pacing costs an Asynq worker and how exactly
// it holds a rate, on one Redis in one run:
//
//   - throughput: raw Asynq and Asynq with asynqpacer.Middleware at an
//     unlimited rate (1e9/s, with its NewProbe probe and controller
//     running) drain the same number of pre-enqueued no-op tasks, in
//     alternating rounds; it prints tasks/s for both and paced/raw per round
//     and over all rounds (target: median round ≥ 0.95, as other processes
//     on a shared machine disturb single runs);
//   - precision: at 100, 1,000 and 5,000 tasks/s (burst 1) on a full queue,
//     the tasks started in a window, achieved/target (target 1 ± 1 %), at
//     worker concurrency 20 and 50;
//   - backlog read: Inspector.GetQueueInfo against Probe.Backlog on a
//     full queue.
//
// Usage:
//
//	go run ./bench/asynq [-redis 127.0.0.1:6379] [-n 20000] [-rounds 4] [-window 3s] [-rates 100,1000,5000]
//
// It uses queues named asynqpacer-bench-* and deletes them when done. It
// exits with status 1 if a target is missed.
//
// Long on purpose: main. A bench's run reads top to bottom as the
// script of what it measures (set up, load, measure, print), in the order
// the output shows.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/pacer"
)

func main() {
	def := os.Getenv("REDIS_ADDR")
	if def == "" {
		def = "127.0.0.1:6379"
	}
	addr := flag.String("redis", def, "Redis address (default $REDIS_ADDR or 127.0.0.1:6379)")
	n := flag.Int("n", 20000, "tasks per throughput run")
	rounds := flag.Int("rounds", 4, "throughput rounds; each runs raw and paced, alternating which goes first; the target is judged on the median round")
	concurrency := flag.Int("concurrency", 20, "Asynq worker concurrency (0: asynqpacer.ServerConcurrency of the rate, the CLI's default)")
	window := flag.Duration("window", 3*time.Second, "precision window per rate")
	pconc := flag.Int("pconcurrency", 50, "second worker concurrency for the precision runs, the one the ±1 % target is judged at (0: asynqpacer.ServerConcurrency of the rate)")
	ratesFlag := flag.String("rates", "100,1000,5000", "precision rates in tasks/s, comma-separated")
	reads := flag.Int("reads", 200, "backlog reads timed per method")
	flag.Parse()
	log.SetFlags(0)

	rates, err := parseRates(*ratesFlag)
	if err != nil {
		log.Fatalf("asynq bench: -rates: %v", err)
	}
	b := &bench{addr: *addr, concurrency: *concurrency}
	if err := b.ping(); err != nil {
		log.Fatalf("asynq bench: Redis at %s: %v (set -redis or REDIS_ADDR)", *addr, err)
	}
	defer b.cleanup()
	ok := true
	start := time.Now()
	fmt.Printf("asynq bench: Redis %s, concurrency %d, asynq v0.26.0\n\n", *addr, *concurrency)

	fmt.Printf("throughput: %d no-op tasks per run, queue filled before the worker starts\n", *n)
	var raw, paced result
	var ratios []float64
	for r := range *rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		line := fmt.Sprintf("  round %d:", r+1)
		var rr, pr result
		for _, withPacer := range order {
			res, err := b.throughput(*n, withPacer, r == 0 && withPacer, *reads)
			if err != nil {
				log.Fatalf("asynq bench: %v", err)
			}
			if withPacer {
				pr = res
				line += fmt.Sprintf("  paced %6.0f tasks/s", res.rate())
			} else {
				rr = res
				line += fmt.Sprintf("  raw %6.0f tasks/s", res.rate())
			}
		}
		raw.add(rr)
		paced.add(pr)
		ratios = append(ratios, pr.rate()/rr.rate())
		fmt.Printf("%s  paced/raw %.3f\n", line, ratios[len(ratios)-1])
	}
	sort.Float64s(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	fmt.Printf("  all rounds: raw %.0f tasks/s, paced (rate 1e9) %.0f tasks/s, paced/raw %.3f; median of rounds %.3f (target ≥ 0.95) %s\n\n",
		raw.rate(), paced.rate(), paced.rate()/raw.rate(), median, verdict(median >= 0.95, &ok))

	fmt.Printf("precision: rate r, burst 1, full queue; tasks started in the first %v; achieved/target (target 1 ± 0.01)\n", *window)
	fmt.Printf("  %8s  %-28s  %-28s\n", "rate", concName(*concurrency), concName(*pconc))
	for _, r := range rates {
		line := fmt.Sprintf("  %6.0f/s", r)
		for _, c := range []int{*concurrency, *pconc} {
			got, err := b.precision(r, *window, c)
			if err != nil {
				log.Fatalf("asynq bench: %v", err)
			}
			want := r * window.Seconds()
			q := float64(got) / want
			pass := q >= 0.99 && q <= 1.01
			v := "ok"
			if !pass {
				v = "MISSED"
			}
			if c == *pconc {
				v = verdict(pass, &ok)
			}
			line += fmt.Sprintf("  %6d of %6.0f  %.4f %-6s", got, want, q, v)
		}
		fmt.Println(line)
	}
	fmt.Printf("  (the target is judged at concurrency %d: at %d, fewer tasks wait on the pacer, and a stall of\n"+
		"   Asynq's one-at-a-time dequeue loop longer than their few ms of slack loses permits on a busy machine)\n", *pconc, *concurrency)
	fmt.Printf("\nbacklog read on a queue of %d pending tasks, %d reads each:\n", *n, *reads)
	fmt.Printf("  Inspector.GetQueueInfo  %8.3f ms/read\n", b.inspectorRead.Seconds()*1e3)
	fmt.Printf("  Probe.Backlog      %8.3f ms/read  (%.0fx lighter)\n", b.probeRead.Seconds()*1e3, b.inspectorRead.Seconds()/b.probeRead.Seconds())
	fmt.Printf("\ntotal %v\n", time.Since(start).Round(100*time.Millisecond))
	if !ok {
		b.cleanup()
		os.Exit(1)
	}
}

// concName names a concurrency setting: 0 is asynqpacer.ServerConcurrency's.
func concName(c int) string {
	if c == 0 {
		return "concurrency: of the rate"
	}
	return fmt.Sprintf("concurrency %d", c)
}

func verdict(pass bool, ok *bool) string {
	if pass {
		return "ok"
	}
	*ok = false
	return "MISSED"
}

func parseRates(s string) ([]float64, error) {
	var rates []float64
	for f := range strings.SplitSeq(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("%q is not a rate > 0", f)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

// result is tasks handled over the time from the first to the last start.
type result struct {
	tasks   int
	elapsed time.Duration
}

func (r *result) add(o result) { r.tasks += o.tasks; r.elapsed += o.elapsed }
func (r result) rate() float64 { return float64(r.tasks) / r.elapsed.Seconds() }

type bench struct {
	addr        string
	concurrency int

	mu     sync.Mutex
	queues []string

	inspectorRead, probeRead time.Duration
}

func (b *bench) opt() asynq.RedisClientOpt { return asynq.RedisClientOpt{Addr: b.addr, PoolSize: 32} }

func (b *bench) ping() error {
	in := asynq.NewInspector(b.opt())
	defer in.Close()
	_, err := in.Queues()
	return err
}

func (b *bench) newQueue(kind string) string {
	buf := make([]byte, 4)
	_, _ = rand.Read(buf)
	q := "asynqpacer-bench-" + kind + "-" + hex.EncodeToString(buf)
	b.mu.Lock()
	b.queues = append(b.queues, q)
	b.mu.Unlock()
	return q
}

func (b *bench) cleanup() {
	in := asynq.NewInspector(b.opt())
	defer in.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		_ = in.DeleteQueue(q, true)
	}
	b.queues = nil
}

// fill enqueues n no-op tasks into q from 16 goroutines.
func (b *bench) fill(q string, n int) error {
	c := asynq.NewClient(b.opt())
	defer c.Close()
	var next atomic.Int64
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := c.Enqueue(asynq.NewTask("noop", nil), asynq.Queue(q), asynq.MaxRetry(1)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("enqueue to %s: %w", q, err)
	}
	return nil
}

// server runs an Asynq server on q with handler h until stop is called.
func (b *bench) server(q string, concurrency int, h asynq.Handler) (stop func(), err error) {
	srv := asynq.NewServer(b.opt(), asynq.Config{
		Concurrency:       concurrency,
		Queues:            map[string]int{q: 1},
		IsFailure:         asynqpacer.IsFailure,
		RetryDelayFunc:    asynqpacer.RetryDelay,
		TaskCheckInterval: 20 * time.Millisecond,
		ShutdownTimeout:   200 * time.Millisecond,
		LogLevel:          asynq.ErrorLevel,
	})
	if err := srv.Start(h); err != nil {
		return nil, err
	}
	return srv.Shutdown, nil
}

// recorder is a no-op handler that records when each task starts.
type recorder struct {
	mu     sync.Mutex
	starts []time.Time
	full   chan struct{} // closed when want tasks have started
	want   int
}

func newRecorder(want int) *recorder {
	return &recorder{starts: make([]time.Time, 0, max(want, 0)), full: make(chan struct{}), want: want}
}

func (r *recorder) ProcessTask(context.Context, *asynq.Task) error {
	now := time.Now()
	r.mu.Lock()
	r.starts = append(r.starts, now)
	if len(r.starts) == r.want {
		close(r.full)
	}
	r.mu.Unlock()
	return nil
}

func (r *recorder) sorted() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := append([]time.Time(nil), r.starts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts
}

// throughput drains n pre-enqueued tasks, raw or paced at an unlimited
// rate, and times it from the first start to the last. timeReads also
// times backlog reads on the full queue before the worker starts.
func (b *bench) throughput(n int, withPacer, timeReads bool, reads int) (result, error) {
	q := b.newQueue("throughput")
	if err := b.fill(q, n); err != nil {
		return result{}, err
	}
	if timeReads {
		if err := b.timeReads(q, reads); err != nil {
			return result{}, err
		}
	}
	rec := newRecorder(n)
	var h asynq.Handler = rec
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if withPacer {
		probe, err := asynqpacer.NewProbe(b.opt(), q)
		if err != nil {
			return result{}, err
		}
		defer probe.Close()
		p, err := pacer.New(pacer.Config{Rate: 1e9, Probe: probe})
		if err != nil {
			return result{}, err
		}
		defer p.Close()
		go func() { _ = p.Run(ctx) }()
		h = mustMiddleware(p)(rec)
	}
	conc := b.concurrency
	if conc == 0 {
		conc = asynqpacer.ServerConcurrency(1e9, 0) // unlimited
	}
	stop, err := b.server(q, conc, h)
	if err != nil {
		return result{}, err
	}
	defer stop()
	select {
	case <-rec.full:
	case <-time.After(2 * time.Minute):
		return result{}, fmt.Errorf("throughput run on %s: %d of %d tasks in 2 minutes", q, len(rec.sorted()), n)
	}
	ts := rec.sorted()
	return result{tasks: len(ts) - 1, elapsed: ts[len(ts)-1].Sub(ts[0])}, nil
}

// precision runs a pacer at rate r on a full queue and counts the tasks
// started in the first window.
func (b *bench) precision(r float64, window time.Duration, concurrency int) (int, error) {
	q := b.newQueue("precision")
	if err := b.fill(q, int(r*window.Seconds()*1.1)+100); err != nil {
		return 0, err
	}
	p, err := pacer.New(pacer.Config{Rate: r})
	if err != nil {
		return 0, err
	}
	rec := newRecorder(-1)
	if concurrency == 0 {
		concurrency = asynqpacer.ServerConcurrency(r, 0)
	}
	stop, err := b.server(q, concurrency, mustMiddleware(p)(rec))
	if err != nil {
		return 0, err
	}
	for {
		ts := rec.sorted()
		if len(ts) > 0 && time.Since(ts[0]) > window+100*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Close() // let waiting handlers go, so the shutdown is quick
	stop()
	ts := rec.sorted()
	got := 0
	for _, at := range ts {
		if at.Sub(ts[0]) < window {
			got++
		}
	}
	return got, nil
}

// timeReads times Inspector.GetQueueInfo and Probe.Backlog on q.
func (b *bench) timeReads(q string, reads int) error {
	in := asynq.NewInspector(b.opt())
	defer in.Close()
	probe, err := asynqpacer.NewProbe(b.opt(), q)
	if err != nil {
		return err
	}
	defer probe.Close()
	ctx := context.Background()
	// Warm both up (connections, script cache).
	if _, err := in.GetQueueInfo(q); err != nil {
		return err
	}
	if _, err := probe.Backlog(ctx); err != nil {
		return err
	}
	start := time.Now()
	for range reads {
		if _, err := in.GetQueueInfo(q); err != nil {
			return err
		}
	}
	b.inspectorRead = time.Since(start) / time.Duration(reads)
	start = time.Now()
	for range reads {
		if _, err := probe.Backlog(ctx); err != nil {
			return err
		}
	}
	b.probeRead = time.Since(start) / time.Duration(reads)
	return nil
}

// mustMiddleware is asynqpacer.Middleware for the bench's own, valid,
// arguments.
func mustMiddleware(p *pacer.Pacer, opts ...asynqpacer.Option) asynq.MiddlewareFunc {
	mw, err := asynqpacer.Middleware(p, opts...)
	if err != nil {
		panic(err)
	}
	return mw
}
