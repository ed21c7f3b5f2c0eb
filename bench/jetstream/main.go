// Command jetstream measures natspacer.Consume against a raw JetStream
// Consume on the same nats-server in one run:
//
//   - throughput: a raw cons.Consume that acks each message, and the paced
//     consumer at an unlimited rate (Rate 1e9) twice, with default options
//     and with the tuned ones given by the flags, each draining the same
//     number of messages; it prints msgs/s and paced/raw for both (target
//     for the default ≥ 0.95). It also times a plain Fetch loop with no
//     pacer, the API the paced consumer is built on (Fetch asks for an
//     exact number of messages; Consume prefetches);
//   - precision: the paced consumer at 1k, 10k and 50k msgs/s on a deep
//     stream, with default options and with the tuned ones; it prints
//     achieved/target over a window after a warm-up (target within ±1%).
//
// It starts an embedded nats-server (memory storage) unless -url or
// NATS_URL names one. Run it with
//
//	go run ./bench/jetstream
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
)

var (
	flagURL       = flag.String("url", os.Getenv("NATS_URL"), "NATS server URL; empty starts an embedded nats-server")
	flagN         = flag.Int("n", 100_000, "messages per throughput run")
	flagRounds    = flag.Int("rounds", 5, "throughput rounds, each a raw, a default paced and a tuned paced run (their order rotating)")
	flagSize      = flag.Int("size", 128, "payload bytes")
	flagWindow    = flag.Duration("window", 3*time.Second, "precision measuring window")
	flagWarmup    = flag.Duration("warmup", 500*time.Millisecond, "precision warm-up before the window")
	flagConc      = flag.Int("concurrency", 16, "paced consumer's Concurrency (handler goroutines)")
	flagBatch     = flag.Int("batch", 250, "paced consumer's MaxBatch")
	flagInFl      = flag.Int("inflight", 1000, "paced consumer's MaxInFlight (0: Concurrency); capped by MaxAckPending")
	flagBurst     = flag.Duration("burst", 0, "precision runs' Burst and BaseBurst, as time of work at the target rate (0: the default, 1)")
	flagMAP       = flag.Int("maxackpending", 0, "the consumer's MaxAckPending (0: the server's default, 1000)")
	flagLinger    = flag.Duration("linger", 2*time.Millisecond, "paced consumer's BatchLinger")
	flagStorage   = flag.String("storage", "memory", "stream storage: memory or file")
	flagProfile   = flag.String("cpuprofile", "", "write CPU profiles of the throughput runs to this file (paced) and this file + .raw")
	flagFetchBase = flag.Bool("fetchbase", true, "also time a plain Fetch loop without a pacer (4 fetches of -batch in flight)")
	flagOnly      = flag.String("only", "", "run only this part: throughput or precision")
	flagVerbose   = flag.Bool("v", false, "print each paced throughput run's fetches and window")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	url, where, stop := serverURL()
	defer stop()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		log.Fatalf("connect %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	b := &bench{js: js, payload: make([]byte, *flagSize)}
	fmt.Printf("jetstream bench: %s, %s storage, %d-byte messages, GOMAXPROCS=%d, %s\n",
		where, *flagStorage, *flagSize, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("paced consumer, default: no options (Concurrency %d, MaxInFlight ≤ %d, MaxBatch ≤ %d, BatchLinger %v; the window sizes itself)\n",
		natspacer.DefaultConcurrency, natspacer.DefaultMaxInFlight, natspacer.DefaultMaxBatch, natspacer.DefaultBatchLinger)
	fmt.Printf("paced consumer, tuned: Concurrency %d, MaxInFlight %d, MaxBatch %d, BatchLinger %v\n",
		*flagConc, *flagInFl, *flagBatch, *flagLinger)

	if *flagOnly != "precision" {
		b.throughput()
	}
	if *flagOnly != "throughput" {
		b.precision()
	}
}

func (b *bench) throughput() {
	fmt.Printf("\nthroughput: drain %d messages, %d rounds\n", *flagN, *flagRounds)
	var raw, def, tuned, defRatios, tunedRatios, defCPU, tunedCPU []float64
	for r := range *flagRounds {
		// Rotate the order: none always runs on a warmer machine.
		var rr, dr, tr float64
		var rc, dc, tc time.Duration
		runs := []func(){
			func() { rr, rc = b.rawRun(*flagN) },
			func() { dr, dc = b.pacedRun(*flagN, nil) },
			func() { tr, tc = b.pacedRun(*flagN, tunedOpts()) },
		}
		for k := range runs {
			runs[(k+r)%len(runs)]()
		}
		raw, def, tuned = append(raw, rr), append(def, dr), append(tuned, tr)
		defRatios, tunedRatios = append(defRatios, dr/rr), append(tunedRatios, tr/rr)
		defCPU, tunedCPU = append(defCPU, float64(dc)/float64(rc)), append(tunedCPU, float64(tc)/float64(rc))
		if *flagFetchBase {
			fr, fc := b.fetchRun(*flagN)
			fmt.Printf("  round %d: raw Fetch loop (4 × %d in flight, ack each) %7.0f msgs/s (%.2f µs CPU/msg)\n", r+1, *flagBatch, fr, perMsg(fc))
		}
		fmt.Printf("  round %d: raw Consume (ack each) %7.0f msgs/s (%.2f µs CPU/msg)   paced, default %7.0f (%.2f µs)  ratio %.3f   paced, tuned %7.0f (%.2f µs)  ratio %.3f\n",
			r+1, rr, perMsg(rc), dr, perMsg(dc), dr/rr, tr, perMsg(tc), tr/rr)
	}
	verdict := "ok"
	if median(defRatios) < 0.95 {
		verdict = "BELOW TARGET"
	}
	fmt.Printf("  paced/raw, default options: median of the rounds %.3f (target ≥ 0.95: %s), best of each %.3f\n",
		median(defRatios), verdict, maxOf(def)/maxOf(raw))
	fmt.Printf("  paced/raw, tuned options:   median of the rounds %.3f, best of each %.3f\n",
		median(tunedRatios), maxOf(tuned)/maxOf(raw))
	fmt.Printf("  medians: raw %.0f msgs/s, paced default %.0f, paced tuned %.0f; CPU per message paced/raw: default %.2f, tuned %.2f\n",
		median(raw), median(def), median(tuned), median(defCPU), median(tunedCPU))
}

func (b *bench) precision() {
	burst := "Burst 1"
	if *flagBurst > 0 {
		burst = fmt.Sprintf("Burst = %v of work", *flagBurst)
	}
	fmt.Printf("\nprecision: paced Consume on a deep stream, %v window after %v warm-up, %s\n", *flagWindow, *flagWarmup, burst)
	for _, target := range []float64{1_000, 10_000, 50_000} {
		for _, run := range []struct {
			name string
			opts []natspacer.ConsumeOption
		}{{"default", nil}, {"tuned", tunedOpts()}} {
			got := b.precisionRun(target, run.opts)
			verdict := "ok"
			if r := got / target; r < 0.99 || r > 1.01 {
				verdict = "OUTSIDE ±1%"
			}
			fmt.Printf("  target %6.0f/s, %-7s options: achieved %9.1f/s, achieved/target = %.4f (%s)\n",
				target, run.name, got, got/target, verdict)
		}
	}
}

type bench struct {
	js      jetstream.JetStream
	payload []byte
	seq     int
}

// stream creates a stream holding n messages and a durable consumer on it.
func (b *bench) stream(n int) (jetstream.Consumer, func()) {
	ctx := context.Background()
	b.seq++
	name := fmt.Sprintf("BENCH_%d_%d", os.Getpid(), b.seq)
	storage := jetstream.MemoryStorage
	if *flagStorage == "file" {
		storage = jetstream.FileStorage
	}
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name}, Storage: storage}); err != nil {
		log.Fatalf("create stream: %v", err)
	}
	const window = 4000
	for i := 0; i < n; i += window {
		futs := make([]jetstream.PubAckFuture, 0, window)
		for range min(window, n-i) {
			f, err := b.js.PublishAsync(name, b.payload)
			if err != nil {
				log.Fatalf("publish: %v", err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				log.Fatalf("publish: %v", err)
			}
		}
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: *flagMAP})
	if err != nil {
		log.Fatalf("create consumer: %v", err)
	}
	return cons, func() { _ = b.js.DeleteStream(context.Background(), name) }
}

// rawRun drains n messages with cons.Consume, acking each, and returns
// msgs/s and the CPU time it took (the server's included).
func (b *bench) rawRun(n int) (float64, time.Duration) {
	cons, done := b.stream(n)
	defer done()
	if *flagProfile != "" {
		stop := profile(*flagProfile + ".raw")
		defer stop()
	}
	var count atomic.Int64
	finished := make(chan struct{})
	cpu0, start := cpuTime(), time.Now()
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		_ = msg.Ack()
		if count.Add(1) == int64(n) {
			close(finished)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	<-finished
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	cc.Stop()
	<-cc.Closed()
	return float64(n) / elapsed.Seconds(), cpu
}

// fetchRun drains n messages with 4 goroutines each looping Fetch(batch),
// acking each message: Consume's fetching without the pacer.
func (b *bench) fetchRun(n int) (float64, time.Duration) {
	cons, done := b.stream(n)
	defer done()
	var count atomic.Int64
	cpu0, start := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for count.Load() < int64(n) {
				mb, err := cons.Fetch(*flagBatch, jetstream.FetchMaxWait(250*time.Millisecond))
				if err != nil {
					log.Fatal(err)
				}
				for msg := range mb.Messages() {
					_ = msg.Ack()
					count.Add(1)
				}
			}
		}()
	}
	for count.Load() < int64(n) {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	wg.Wait()
	return float64(n) / elapsed.Seconds(), cpu
}

// pacedRun drains n messages with natspacer.Consume at Rate 1e9, given
// opts, and returns msgs/s and the CPU time it took (the server's
// included).
func (b *bench) pacedRun(n int, opts []natspacer.ConsumeOption) (float64, time.Duration) {
	cons, done := b.stream(n)
	defer done()
	p, err := pacer.New(pacer.Config{Rate: 1e9}) // unlimited
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	if *flagProfile != "" {
		stop := profile(*flagProfile)
		defer stop()
	}
	var count atomic.Int64
	finished := make(chan struct{})
	cpu0, start := cpuTime(), time.Now()
	c, err := natspacer.Consume(context.Background(), cons, p, natspacer.HandlerFunc(func(context.Context, jetstream.Msg) error {
		if count.Add(1) == int64(n) {
			close(finished)
		}
		return nil // Consume acks it
	}), opts...)
	if err != nil {
		log.Fatal(err)
	}
	<-finished
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	st := c.Stats()
	if *flagVerbose {
		fmt.Printf("    paced (%d options): %d fetches (%.0f messages each), window at the end %d\n",
			len(opts), st.Fetches, float64(st.Received)/float64(st.Fetches), st.Window)
	}
	c.Drain()
	if err := c.Wait(); err != nil {
		log.Fatal(err)
	}
	return float64(n) / elapsed.Seconds(), cpu
}

// precisionRun paces a deep stream at target msgs/s and returns the rate
// of handler starts over the window after the warm-up.
func (b *bench) precisionRun(target float64, opts []natspacer.ConsumeOption) float64 {
	total := *flagWarmup + *flagWindow + 500*time.Millisecond
	n := int(target*total.Seconds()) + 1000
	cons, done := b.stream(n)
	defer done()
	burst := max(1, target*flagBurst.Seconds()) // 1 when -burst is 0
	p, err := pacer.New(pacer.Config{Rate: target, Burst: burst, BaseBurst: burst})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	starts := make([]time.Time, 0, n)
	c, err := natspacer.Consume(context.Background(), cons, p, natspacer.HandlerFunc(func(context.Context, jetstream.Msg) error {
		now := time.Now()
		mu.Lock()
		starts = append(starts, now)
		mu.Unlock()
		return nil
	}), opts...)
	if err != nil {
		log.Fatal(err)
	}
	begin := time.Now()
	time.Sleep(total)
	c.Drain()
	if err := c.Wait(); err != nil {
		log.Fatal(err)
	}
	from, to := begin.Add(*flagWarmup), begin.Add(*flagWarmup+*flagWindow)
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	count := 0
	for _, s := range starts {
		if !s.Before(from) && s.Before(to) {
			count++
		}
	}
	return float64(count) / flagWindow.Seconds()
}

// tunedOpts returns the options the flags give, for the tuned runs.
func tunedOpts() []natspacer.ConsumeOption {
	opts := []natspacer.ConsumeOption{natspacer.Concurrency(*flagConc), natspacer.MaxBatch(*flagBatch), natspacer.BatchLinger(*flagLinger),
		natspacer.PollWait(250 * time.Millisecond)} // Drain waits for the fetches out on a dry stream
	if *flagInFl > 0 {
		opts = append(opts, natspacer.MaxInFlight(*flagInFl))
	}
	return opts
}

// cpuTime returns the process's user + system CPU time so far (the
// embedded server's included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perMsg is CPU time per message of a throughput run, in µs.
func perMsg(d time.Duration) float64 { return float64(d.Microseconds()) / float64(*flagN) }

// profile writes a CPU profile to path until the returned func is called.
func profile(path string) func() {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = max(m, x)
	}
	return m
}

// serverURL returns the server to use: -url, or an embedded nats-server.
func serverURL() (url, where string, stop func()) {
	if *flagURL != "" {
		return *flagURL, "nats-server at " + *flagURL, func() {}
	}
	dir, err := os.MkdirTemp("", "bench-jetstream")
	if err != nil {
		log.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		log.Fatal("embedded nats-server not ready")
	}
	return s.ClientURL(), "embedded nats-server " + server.VERSION,
		func() { s.Shutdown(); s.WaitForShutdown(); os.RemoveAll(dir) }
}
