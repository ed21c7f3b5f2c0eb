// Command cli measures `pacer run` as a user runs it, beside plain Go
// programs doing the same job, in one sitting: N jobs queued first (an
// Asynq queue on Redis, a JetStream stream on NATS), then a worker that
// takes them and POSTs each to a local HTTP server answering 200 at once.
//
// For each broker it runs, interleaved and for -rounds rounds:
//
//   - unlimited, at each -caps value: pacer run with rate = 1000000 and
//     max_in_flight = cap, beside a plain program with cap handlers (Asynq:
//     asynq.Server with Concurrency = cap; JetStream: nats.go's Consume
//     with default options feeding cap goroutines);
//   - fixed rate: pacer run with rate = -rate and max_in_flight = the first
//     cap, beside the same plain program paced by golang.org/x/time/rate.
//
// Both use the http.Client of pacer's http sink (DefaultTransport cloned,
// MaxIdleConns 0, MaxIdleConnsPerHost 256, Timeout 10s). The plain
// programs are modes of this binary (it runs itself with -mode). Each run
// is a child process: jobs/s is from the first request the server gets to
// the Nth; CPU µs/job is the child's rusage (user + sys) over N; max RSS
// is the child's peak resident set (VmHWM), read before it is stopped. It prints the medians (min–max) and pacer/plain.
//
// Every run has a queue or stream of its own, deleted after it. Run it
// with
//
//	go run ./bench/cli [-redis 127.0.0.1:6379] [-nats nats://127.0.0.1:4222] [-n 20000] [-rounds 3]
//
// Long on purpose: parent, bench.run. A bench's run reads top to bottom as the
// script of what it measures (set up, load, measure, print), in the order
// the output shows.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	flagRedis   = flag.String("redis", "127.0.0.1:6379", "Redis address (Asynq)")
	flagNATS    = flag.String("nats", "nats://127.0.0.1:4222", "NATS URL (JetStream)")
	flagN       = flag.Int("n", 20000, "jobs per unlimited run")
	flagFixedN  = flag.Int("fixedn", 10000, "jobs per fixed-rate run")
	flagRounds  = flag.Int("rounds", 3, "rounds, each running every case once, pacer and plain interleaved")
	flagCaps    = flag.String("caps", "50,200", "max_in_flight values of the unlimited runs")
	flagRate    = flag.Float64("rate", 2000, "jobs/s of the fixed-rate runs; 0 skips them")
	flagBrokers = flag.String("brokers", "jetstream,asynq", "brokers to run")
	flagPacer   = flag.String("pacer", "", "a built pacer binary; empty builds ./cmd/pacer into a temp dir")
	flagTimeout = flag.Duration("timeout", 3*time.Minute, "longest run")
	flagWorker  = flag.String("worker", "", "more keys of pacer run's [[worker]] table, TOML lines (such as 'burst = 100')")

	// The child's flags (-mode plain-asynq or plain-jetstream).
	flagMode  = flag.String("mode", "", "internal: run as a plain program (plain-asynq, plain-jetstream)")
	flagQueue = flag.String("queue", "", "internal: queue or stream")
	flagConc  = flag.Int("conc", 50, "internal: handlers")
	flagURL   = flag.String("url", "", "internal: endpoint")
	flagLimit = flag.Float64("limit", 0, "internal: x/time/rate limit, jobs/s; 0 = none")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *flagMode != "" {
		plain()
		return
	}
	parent()
}

// client is pacer's http sink's default client.
func client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Timeout: 10 * time.Second, Transport: t}
}

// post sends one job as the http sink does.
func post(ctx context.Context, c *http.Client, url, id, typ string, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.GetBody = nil
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Pacer-Job-Id", id)
	req.Header.Set("X-Pacer-Job-Type", typ)
	req.Header.Set("X-Pacer-Job-Attempt", "1")
	req.Header.Set("Idempotency-Key", id)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// endpoint is the local server: 200 at once, counting requests.
type endpoint struct {
	mu    sync.Mutex
	n     int64
	want  int64
	first time.Time
	last  time.Time
	done  chan struct{}
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	now := time.Now()
	e.mu.Lock()
	e.n++
	if e.n == 1 {
		e.first = now
	}
	if e.n == e.want {
		e.last = now
		close(e.done)
	}
	e.mu.Unlock()
}

func (e *endpoint) reset(want int) {
	e.mu.Lock()
	e.n, e.want, e.done = 0, int64(want), make(chan struct{})
	e.mu.Unlock()
}

type result struct {
	rate, cpuPerJob, rssMB float64
}

type bench struct {
	pacer string
	self  string
	url   string
	ep    *endpoint
	js    jetstream.JetStream
	aq    *asynq.Client
	insp  *asynq.Inspector
	tmp   string
	seq   int
}

func parent() {
	tmp, err := os.MkdirTemp("", "pacer-bench-cli")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	b := &bench{ep: &endpoint{}, tmp: tmp, pacer: *flagPacer}
	if b.pacer == "" {
		b.pacer = filepath.Join(tmp, "pacer")
		out, err := exec.Command("go", "build", "-o", b.pacer, "github.com/jobpacer/pacer/cmd/pacer").CombinedOutput()
		if err != nil {
			log.Fatalf("go build ./cmd/pacer: %v\n%s", err, out)
		}
	}
	if b.self, err = os.Executable(); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(ln, b.ep) }()
	b.url = "http://" + ln.Addr().String() + "/jobs"

	brokers := strings.Split(*flagBrokers, ",")
	if slices.Contains(brokers, "jetstream") {
		nc, err := nats.Connect(*flagNATS)
		if err != nil {
			log.Fatalf("nats %s: %v", *flagNATS, err)
		}
		defer nc.Close()
		if b.js, err = jetstream.New(nc); err != nil {
			log.Fatal(err)
		}
	}
	if slices.Contains(brokers, "asynq") {
		opt := asynq.RedisClientOpt{Addr: *flagRedis}
		b.aq = asynq.NewClient(opt)
		defer b.aq.Close()
		b.insp = asynq.NewInspector(opt)
		defer b.insp.Close()
	}
	var caps []int
	for _, s := range strings.Split(*flagCaps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			log.Fatalf("-caps: %q is not a number ≥ 1", s)
		}
		caps = append(caps, n)
	}
	type kase struct {
		broker string
		cap    int
		rate   float64 // 0: unlimited
	}
	var cases []kase
	for _, br := range brokers {
		for _, c := range caps {
			cases = append(cases, kase{br, c, 0})
		}
		if *flagRate > 0 {
			cases = append(cases, kase{br, caps[0], *flagRate})
		}
	}
	fmt.Printf("cli bench: %d jobs per unlimited run, %d per fixed-rate run, %d rounds; load average %s\n", *flagN, *flagFixedN, *flagRounds, loadavg())
	res := map[string][]result{}
	key := func(k kase, who string) string { return fmt.Sprintf("%s/%d/%g/%s", k.broker, k.cap, k.rate, who) }
	for r := range *flagRounds {
		for i, k := range cases {
			order := []string{"pacer", "plain"}
			if (r+i)%2 == 1 {
				order = []string{"plain", "pacer"}
			}
			for _, who := range order {
				res[key(k, who)] = append(res[key(k, who)], b.run(k.broker, who, k.cap, k.rate))
			}
		}
	}
	fmt.Printf("\nload average at the end %s\n\n", loadavg())
	fmt.Println("| case | pacer run | plain | ratio |")
	fmt.Println("|---|---|---|---|")
	for _, k := range cases {
		name := fmt.Sprintf("%s, max_in_flight %d, unlimited", k.broker, k.cap)
		if k.rate > 0 {
			name = fmt.Sprintf("%s, max_in_flight %d, rate %g", k.broker, k.cap, k.rate)
		}
		p, q := res[key(k, "pacer")], res[key(k, "plain")]
		row := func(what string, f func(result) float64, format string) {
			mp, lp, hp := stats(p, f)
			mq, lq, hq := stats(q, f)
			fmt.Printf("| %s, %s | "+format+" ("+format+"–"+format+") | "+format+" ("+format+"–"+format+") | %.2f |\n", name, what, mp, lp, hp, mq, lq, hq, mp/mq)
		}
		row("jobs/s", func(r result) float64 { return r.rate }, "%.0f")
		row("CPU µs/job", func(r result) float64 { return r.cpuPerJob }, "%.1f")
		row("max RSS MB", func(r result) float64 { return r.rssMB }, "%.1f")
	}
}

func stats(rs []result, f func(result) float64) (med, lo, hi float64) {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2], v[0], v[len(v)-1]
}

// vmHWM returns the peak resident set of process pid in MB (VmHWM of
// /proc/pid/status), 0 if unknown.
func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// run queues the jobs, runs one child until the endpoint got them all,
// stops it and deletes the queue or stream.
func (b *bench) run(broker, who string, conc int, lim float64) result {
	b.seq++
	name := fmt.Sprintf("benchcli%d_%d", os.Getpid(), b.seq)
	n := *flagN
	if lim > 0 {
		n = *flagFixedN
	}
	ctx := context.Background()
	payload := []byte(`{"to":"someone@example.com","template":"welcome","n":12345}`)
	switch broker {
	case "jetstream":
		if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}}); err != nil {
			log.Fatalf("stream %s: %v", name, err)
		}
		defer func() { _ = b.js.DeleteStream(ctx, name) }()
		for i := range n {
			if _, err := b.js.PublishAsync(name+".job", payload); err != nil {
				log.Fatal(err)
			}
			if i%5000 == 4999 {
				<-b.js.PublishAsyncComplete()
			}
		}
		<-b.js.PublishAsyncComplete()
	case "asynq":
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 16 {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if _, err := b.aq.Enqueue(asynq.NewTask("bench", payload), asynq.Queue(name), asynq.MaxRetry(3)); err != nil {
						log.Fatal(err)
					}
				}
			})
		}
		wg.Wait()
		defer func() { _ = b.insp.DeleteQueue(name, true) }()
	default:
		log.Fatalf("-brokers: %q: want jetstream or asynq", broker)
	}
	var cmd *exec.Cmd
	if who == "pacer" {
		cfg := filepath.Join(b.tmp, name+".toml")
		r := 1e6
		if lim > 0 {
			r = lim
		}
		src := fmt.Sprintf("kind = \"asynq\"\nqueue = %q\ntask_type = \"bench\"\n", name)
		if broker == "jetstream" {
			src = fmt.Sprintf("kind = \"jetstream\"\nstream = %q\nsubjects = [\"%s.>\"]\n", name, name)
		}
		toml := fmt.Sprintf("admin = \"\"\nlog_level = \"warn\"\nstatus_every = \"0s\"\n[redis]\naddr = %q\n[nats]\nurl = %q\n"+
			"[[worker]]\nname = \"bench\"\nrate = %g\nmax_in_flight = %d\n%s\n[worker.source]\n%s[worker.sink]\nkind = \"http\"\nurl = %q\n",
			*flagRedis, *flagNATS, r, conc, *flagWorker, src, b.url)
		if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
			log.Fatal(err)
		}
		cmd = exec.Command(b.pacer, "run", cfg)
	} else {
		cmd = exec.Command(b.self, "-mode", "plain-"+broker, "-queue", name, "-conc", strconv.Itoa(conc), "-url", b.url,
			"-limit", strconv.FormatFloat(lim, 'g', -1, 64), "-redis", *flagRedis, "-nats", *flagNATS)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	b.ep.reset(n)
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	select {
	case <-b.ep.done:
	case <-time.After(*flagTimeout):
		b.ep.mu.Lock()
		got := b.ep.n
		b.ep.mu.Unlock()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Fatalf("%s %s: %d of %d jobs in %v", who, broker, got, n, *flagTimeout)
	}
	// The child's own high-water RSS, read before it stops: the rusage's
	// ru_maxrss of a child also counts this process's RSS when it forked.
	hwm := vmHWM(cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	b.ep.mu.Lock()
	el := b.ep.last.Sub(b.ep.first)
	b.ep.mu.Unlock()
	r := result{rate: float64(n-1) / el.Seconds(), cpuPerJob: float64(cpu.Microseconds()) / float64(n), rssMB: hwm}
	what := "unlimited"
	if lim > 0 {
		what = fmt.Sprintf("rate %g", lim)
	}
	fmt.Printf("%-9s %-5s max_in_flight %3d %-10s %8.0f jobs/s  %6.1f µs/job  %5.1f MB\n", broker, who, conc, what, r.rate, r.cpuPerJob, r.rssMB)
	return r
}
