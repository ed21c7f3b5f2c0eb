// Command dashboard measures what the dashboard costs the worker that
// serves it: the CPU time of a `pacer run` process pacing -rate jobs/s
// (1,000 by default) with no page open, with one page open, and with
// -pages pages open, and the difference, as a share of one core and of the
// worker's own CPU.
//
//	go run ./bench/dashboard                 # NATS at $NATS_URL or nats://127.0.0.1:4222
//	go run ./bench/dashboard -dur 20s -rounds 3 -pages 50
//
// Each phase is a fresh `pacer run` (built once from ./cmd/pacer) with one
// worker: a JetStream stream that this program fills at -rate jobs/s, an
// http sink on this program's server, rate = base = -rate. An open page
// is what the page does to the server: it loads / and its assets once,
// then asks /samples?since=<newest sample> every second on a kept-alive
// connection; this program does exactly that over HTTP instead of a
// browser, so that the browser's own CPU does not disturb the worker's on
// a shared machine. The CPU time
// is the process's user + system time as wait4 reports it at its exit
// (microseconds, not clock ticks), so start-up and drain count in every
// phase alike. Phases run round-robin (none, one page, -pages pages),
// -rounds times; the figures are medians.
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
	rate := flag.Float64("rate", 1000, "jobs per second the worker paces")
	dur := flag.Duration("dur", 20*time.Second, "length of a phase")
	rounds := flag.Int("rounds", 3, "phases of each kind")
	pages := flag.Int("pages", 50, "pages open in the many-pages phase (the admin server keeps at most admin.MaxConns connections open)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "bench-dashboard-")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pacer")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/pacer").CombinedOutput()
	if err != nil {
		log.Fatalf("go build ./cmd/pacer (run from the repository root): %v\n%s", err, out)
	}

	var handled atomic.Int64
	sinkSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		handled.Add(1)
	}))
	defer sinkSrv.Close()
	nc, err := nats.Connect(*natsURL)
	check(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	check(err)

	kinds := []int{0, 1, *pages}
	cpu := map[int][]float64{} // pages → CPU seconds per second of the phase
	reqs := map[int][]float64{}
	done := map[int][]float64{}
	for round := range *rounds {
		for _, n := range kinds {
			r := phase(bin, dir, sinkSrv.URL, js, &handled, *rate, *dur, n, round)
			cpu[n] = append(cpu[n], r.cpu)
			reqs[n] = append(reqs[n], r.requests)
			done[n] = append(done[n], r.jobs)
			fmt.Printf("round %d, %2d page(s): worker CPU %6.2f %% of a core, %7.1f jobs/s handled, %5.1f /samples requests/s, %6.0f bytes/s\n",
				round+1, n, 100*r.cpu, r.jobs, r.requests, r.bytes)
		}
	}
	base := median(cpu[0])
	fmt.Printf("\nmedians over %d rounds of %v, worker pacing %g jobs/s (%.1f jobs/s handled with no page):\n", *rounds, *dur, *rate, median(done[0]))
	fmt.Printf("  no page:    %6.2f %% of a core\n", 100*base)
	for _, n := range kinds[1:] {
		c := median(cpu[n])
		per := (c - base) / float64(n)
		fmt.Printf("  %2d page(s): %6.2f %% of a core; cost per page %+.3f %% of a core = %+.2f %% of the worker's own CPU (%.1f /samples requests/s)\n",
			n, 100*c, 100*per, 100*per/base, median(reqs[n]))
	}
}

type result struct {
	cpu      float64 // CPU seconds per second of the phase
	jobs     float64 // jobs handled per second
	requests float64 // /samples requests per second
	bytes    float64 // /samples bytes per second
}

// phase runs one `pacer run` for dur with pages pages open and returns
// its CPU time per second.
func phase(bin, dir, sinkURL string, js jetstream.JetStream, handled *atomic.Int64, rate float64, dur time.Duration, pages, round int) result {
	stream := fmt.Sprintf("BENCHDASH_%d_%d_%d", os.Getpid(), round, pages)
	subj := strings.ToLower(stream) + ".job"
	cfgPath := filepath.Join(dir, "config.toml")
	natsURL := js.Conn().ConnectedUrl()
	cfg := fmt.Sprintf(`admin = "127.0.0.1:0"
log_level = "warn"
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
kind = "http"
url = %q
`, natsURL, rate, rate, int(rate/20)+1, stream, subj, sinkURL)
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
	defer func() { _ = js.DeleteStream(context.Background(), stream) }()

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	// The producer: rate jobs/s, in batches every 10 ms.
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start, sent := time.Now(), 0
		for {
			select {
			case <-ctx.Done():
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
	var requests, bytes atomic.Int64
	for range pages {
		wg.Go(func() { page(ctx, admin, &requests, &bytes) })
	}
	h0 := handled.Load()
	t0 := time.Now()
	<-ctx.Done()
	elapsed := time.Since(t0).Seconds()
	jobs := float64(handled.Load()-h0) / elapsed
	wg.Wait()
	check(cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	st := cmd.ProcessState
	cpu := (st.UserTime() + st.SystemTime()).Seconds()
	return result{cpu: cpu / elapsed, jobs: jobs, requests: float64(requests.Load()) / elapsed, bytes: float64(bytes.Load()) / elapsed}
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
