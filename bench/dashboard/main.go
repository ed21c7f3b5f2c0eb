// Command dashboard measures what the dashboard costs the worker that
// serves it: the CPU time of a `pacer run` process pacing -rate jobs/s
// (1,000 by default) with no page open, with one page open, and with
// -pages pages open, and the difference, as a share of one core and of the
// worker's own CPU.
//
//	go run ./bench/dashboard                 # NATS at $NATS_URL or nats://127.0.0.1:4222
//	go run ./bench/dashboard -dur 20s -rounds 5 -pages 50 -hammer 5s
//
// Each round runs three fresh `pacer run` processes (built once from
// ./cmd/pacer) side by side for -dur, so that the load of the machine
// weighs on all three alike: one with no page open, one with one page, one
// with -pages pages. Each has one worker: a JetStream stream that this
// program fills at -rate jobs/s, a log sink (its lines below log_level, so
// not written), rate = base = -rate. An open page
// is what the page does to the server: it loads / and its assets once,
// then asks /samples?since=<newest sample> every second on a kept-alive
// connection; this program does exactly that over HTTP instead of a
// browser, so that the browser's own CPU does not disturb the worker's on
// a shared machine. The CPU time
// is the sum of the process's threads' run times (/proc/PID/task/*/schedstat,
// nanoseconds) over the round. The figures are medians over -rounds
// rounds; the cost of a page is the difference to the process with no page
// open in the same round, divided by the pages. That difference is small
// beside the noise of a shared machine, so after each round the process
// with no page open also answers /samples?since= back to back for -hammer
// on one connection: its CPU beyond its rate of the round, per request, is
// the cost of one poll of an open page, which polls once a second.
//
// Long on purpose: phase. A bench's run reads top to bottom as the
// script of what it measures (set up, load, measure, print), in the order
// the output shows.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	natsURL := flag.String("nats", cmp.Or(os.Getenv("NATS_URL"), nats.DefaultURL), "NATS server with JetStream")
	rate := flag.Float64("rate", 1000, "jobs per second each worker paces")
	dur := flag.Duration("dur", 20*time.Second, "length of a round")
	rounds := flag.Int("rounds", 5, "rounds")
	hammer := flag.Duration("hammer", 5*time.Second, "after the round, time the no-page process answers /samples?since= back to back")
	pages := flag.Int("pages", 50, "pages open on the third process (the admin server keeps at most admin.MaxConns connections open)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "bench-dashboard-")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pacer")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/pacer").CombinedOutput()
	if err != nil {
		log.Fatalf("go build ./cmd/pacer (run from the repository root): %v\n%s", err, out)
	}

	kinds := []int{0, 1, *pages}

	cpu := map[int][]float64{}  // pages → CPU seconds per second
	cost := map[int][]float64{} // pages → (CPU − CPU with no page in the same round) ÷ pages
	reqs := map[int][]float64{}
	jobs := map[int][]float64{}
	var perReq []float64 // seconds
	for round := range *rounds {
		res := make([]result, len(kinds))
		var wg sync.WaitGroup
		for i, n := range kinds {
			wg.Go(func() {
				res[i] = phase(bin, filepath.Join(dir, strconv.Itoa(i)), *natsURL, *rate, *dur, *hammer, n, round)
			})
		}
		wg.Wait()
		for i, n := range kinds {
			r := res[i]
			cpu[n] = append(cpu[n], r.cpu)
			reqs[n] = append(reqs[n], r.requests)
			jobs[n] = append(jobs[n], r.jobs)
			if n > 0 {
				cost[n] = append(cost[n], (r.cpu-res[0].cpu)/float64(n))
			} else if r.perRequest != 0 {
				perReq = append(perReq, r.perRequest.Seconds())
			}
			fmt.Printf("round %d, %2d page(s): worker CPU %6.2f %% of a core, %7.1f jobs/s handled, %5.1f /samples requests/s, %6.0f bytes/s",
				round+1, n, 100*r.cpu, r.jobs, r.requests, r.bytes)
			if n == 0 && r.perRequest != 0 {
				fmt.Printf("; %v CPU per /samples?since= request", r.perRequest.Round(100*time.Nanosecond))
			}
			fmt.Println()
		}
	}
	base := median(cpu[0])
	pr := median(perReq)
	fmt.Printf("\nmedians over %d rounds of %v, each worker pacing %g jobs/s (%.1f jobs/s handled with no page):\n", *rounds, *dur, *rate, median(jobs[0]))
	fmt.Printf("   no page:  %6.2f %% of a core\n", 100*base)
	for _, n := range kinds[1:] {
		per := median(cost[n])
		fmt.Printf("  %2d page(s): %6.2f %% of a core; cost per page %+.3f %% of a core = %+.2f %% of the worker's own CPU (%.1f /samples requests/s)\n",
			n, 100*median(cpu[n]), 100*per, 100*per/base, median(reqs[n]))
	}
	if len(perReq) > 0 {
		fmt.Printf("  one page, from the CPU per request (%.1f µs, %d rounds) at one request a second: %.4f %% of a core = %.3f %% of the worker's own CPU\n",
			pr*1e6, len(perReq), 100*pr, 100*pr/base)
	}
}

type result struct {
	cpu        float64       // CPU seconds per second of the main window
	jobs       float64       // jobs handled per second
	requests   float64       // /samples requests per second
	bytes      float64       // /samples bytes per second
	perRequest time.Duration // CPU per /samples?since= request (hammer window; process with no page only)
}

// phase runs one `pacer run` for dur with pages pages open and returns
// its CPU time per second.
func phase(bin, dir, natsURL string, rate float64, dur, hammer time.Duration, pages, round int) result {
	check(os.MkdirAll(dir, 0o755))
	stream := fmt.Sprintf("BENCHDASH_%d_%d_%d", os.Getpid(), round, pages)
	subj := strings.ToLower(stream) + ".job"
	cfgPath := filepath.Join(dir, "config.toml")
	// A connection and a stream of its own: the three producers of a
	// round do not wait on one another, and the stream is there before
	// the worker.
	nc, err := nats.Connect(natsURL)
	check(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	check(err)
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: stream, Subjects: []string{subj}})
	check(err)
	defer func() { _ = js.DeleteStream(context.Background(), stream) }()
	cfg := fmt.Sprintf(`log_level = "warn"
status_every = "0s"
drain_timeout = "5s"
[nats]
url = %q
[[worker]]
name = "bench"
rate = %g
base = %g
burst = %d
max_in_flight = 64
[worker.source]
kind = "jetstream"
stream = %q
subjects = [%q]
[worker.sink]
kind = "log"
`, natsURL, rate, rate, int(rate/20)+1, stream, subj)
	check(os.WriteFile(cfgPath, []byte(cfg), 0o644))
	ln := freePort()
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--admin", ln)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	admin := "http://" + ln
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(admin + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("pacer run did not answer on ", admin)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The producer runs through the main window and the hammer window.
	prodCtx, stopProducer := context.WithCancel(context.Background())
	defer stopProducer()
	var prodWG sync.WaitGroup
	// The producer: rate jobs/s, in batches every 10 ms.
	prodWG.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start, sent := time.Now(), 0
		for {
			select {
			case <-prodCtx.Done():
				return
			case <-tick.C:
			}
			for want := int(time.Since(start).Seconds() * rate); sent < want; sent++ {
				if _, err := js.PublishAsync(subj, []byte(`{"bench":1}`)); err != nil {
					log.Fatal(err)
				}
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var requests, bytes atomic.Int64
	for range pages {
		wg.Go(func() { page(ctx, admin, &requests, &bytes) })
	}
	pid := cmd.Process.Pid
	h0, c0 := succeeded(admin), cpuTime(pid)
	t0 := time.Now()
	<-ctx.Done()
	elapsed := time.Since(t0).Seconds()
	jobs := float64(succeeded(admin)-h0) / elapsed
	baseRate := (cpuTime(pid) - c0).Seconds() / elapsed
	wg.Wait()

	var perRequest time.Duration
	if hammer > 0 && pages == 0 {
		// As many /samples requests as one connection carries, one after
		// the other, for hammer: the worker's CPU beyond its rate of the
		// main window, per request.
		client := &http.Client{Transport: &http.Transport{}}
		since := newest(client, admin)
		n, c1, t1 := 0, cpuTime(pid), time.Now()
		for time.Since(t1) < hammer {
			resp, err := client.Get(fmt.Sprintf("%s/samples?since=%.3f", admin, since))
			check(err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			n++
		}
		extra := (cpuTime(pid) - c1).Seconds() - baseRate*time.Since(t1).Seconds()
		perRequest = time.Duration(extra / float64(n) * 1e9)
	}
	stopProducer()
	prodWG.Wait()
	check(cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	return result{cpu: baseRate, jobs: jobs, requests: float64(requests.Load()) / elapsed, bytes: float64(bytes.Load()) / elapsed,
		perRequest: perRequest}
}

// cpuTime returns the CPU time of process pid so far: the sum of its
// threads' run times in /proc/PID/task/*/schedstat (nanoseconds; Go's
// threads live as long as the process).
func cpuTime(pid int) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	check(err)
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// newest returns the time of the newest sample of /samples.
func newest(client *http.Client, admin string) float64 {
	resp, err := client.Get(admin + "/samples")
	check(err)
	defer resp.Body.Close()
	var s struct {
		Workers []struct {
			T []float64 `json:"t"`
		} `json:"workers"`
	}
	check(json.NewDecoder(resp.Body).Decode(&s))
	t := 0.0
	for _, w := range s.Workers {
		if n := len(w.T); n > 0 {
			t = max(t, w.T[n-1])
		}
	}
	return t
}

// page does to the admin server what an open dashboard does: load the
// page and its assets, then ask for the new samples every second.
func page(ctx context.Context, admin string, requests, bytes *atomic.Int64) {
	// A connection of its own, kept alive, as a browser tab has.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func(path string) []byte {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	for _, p := range []string{"/", "/dashboard/uPlot.min.css", "/dashboard/app.css", "/dashboard/uPlot.iife.min.js", "/dashboard/app.js"} {
		get(p)
	}
	since := 0.0
	for {
		path := "/samples"
		if since > 0 {
			path += fmt.Sprintf("?since=%.3f", since)
		}
		b := get(path)
		requests.Add(1)
		bytes.Add(int64(len(b)))
		var s struct {
			Workers []struct {
				T []float64 `json:"t"`
			} `json:"workers"`
		}
		if json.Unmarshal(b, &s) == nil {
			for _, w := range s.Workers {
				if n := len(w.T); n > 0 {
					since = max(since, w.T[n-1])
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// succeeded returns the jobs the worker has handled, from /status.
func succeeded(admin string) uint64 {
	resp, err := http.Get(admin + "/status")
	check(err)
	defer resp.Body.Close()
	var st struct {
		Workers []struct {
			Succeeded uint64 `json:"succeeded"`
		} `json:"workers"`
	}
	check(json.NewDecoder(resp.Body).Decode(&st))
	if len(st.Workers) != 1 {
		log.Fatalf("%s/status: %d workers, want 1", admin, len(st.Workers))
	}
	return st.Workers[0].Succeeded
}

func freePort() string {
	srv := httptest.NewServer(nil)
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	return addr
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
