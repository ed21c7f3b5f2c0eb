package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/testenv"
)

// Two `pacer run` processes take from one Asynq queue, each alone allowed
// 40 jobs/s, and share a fleet limit of 40/s in Redis: together they send
// 40/s to the sink, not 80, and each gets about half. With the default
// lease_time (100ms) and with 1s leases, which cost fewer Redis calls.
func TestFleetSharedByTwoProcesses(t *testing.T) {
	t.Parallel()
	redis := testenv.Redis(t)
	for _, lease := range []string{"", "1s"} {
		name := "lease_time default"
		if lease != "" {
			name = "lease_time " + lease
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fleetSharedByTwo(t, redis, lease)
		})
	}
}

func fleetSharedByTwo(t *testing.T, redis, lease string) {
	queue, fleet := testenv.UniqueName(t), testenv.UniqueName(t)
	const rate = 40.0
	leaseKey := ""
	if lease != "" {
		leaseKey = fmt.Sprintf("lease_time = %q", lease)
	}

	// The sink records each job's arrival and which process sent it.
	type hit struct {
		at   time.Time
		proc string
	}
	var mu sync.Mutex
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, hit{time.Now(), r.Header.Get("X-Proc")})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	snapshot := func() []hit {
		mu.Lock()
		defer mu.Unlock()
		return append([]hit(nil), hits...)
	}

	config := func(proc string) string {
		return fmt.Sprintf(`
status_every = "0s"
drain_timeout = "5s"
[redis]
addr = %q

[fleet.%s]
rate = %g
expected_workers = 2
%s

[[worker]]
name = "mail"
fleet = %q            # rate defaults to the fleet's: alone, each process would take 40/s
max_in_flight = 10
[worker.source]
kind = "asynq"
queue = %q
[worker.sink]
kind = "http"
url = %q
headers = { X-Proc = %q }
`, redis, fleet, rate, leaseKey, fleet, queue, srv.URL, proc)
	}
	procs := []*proc{startRun(t, t.TempDir(), config("1")), startRun(t, t.TempDir(), config("2"))}

	const n = 600 // 15 s of work at 40/s: both stay backlogged through the window
	if o, code := pacer(t, "enqueue", "--redis", redis, "--queue", queue, "-n", strconv.Itoa(n), "-q"); code != 0 {
		t.Fatalf("pacer enqueue: exit %d: %s", code, o)
	}
	var first []hit
	testenv.WaitFor(t, 20*time.Second, "jobs from both processes", func() bool {
		first = snapshot()
		seen := map[string]bool{}
		for _, h := range first {
			seen[h.proc] = true
		}
		return len(seen) == 2
	})
	// Count over 6 s, starting 1 s after both processes send.
	from := first[len(first)-1].at.Add(time.Second)
	const window = 6 * time.Second
	time.Sleep(time.Until(from.Add(window + 300*time.Millisecond)))
	per := map[string]int{}
	total := 0
	for _, h := range snapshot() {
		if !h.at.Before(from) && h.at.Before(from.Add(window)) {
			per[h.proc]++
			total++
		}
	}
	want := rate * window.Seconds()
	within(t, fmt.Sprintf("jobs in %v from two processes sharing a fleet limit of %g/s (80/s without it)", window, rate), total, want, 0.05)
	t.Logf("per process: %d and %d (%.1f/s and %.1f/s)", per["1"], per["2"], float64(per["1"])/window.Seconds(), float64(per["2"])/window.Seconds())
	for _, p := range []string{"1", "2"} {
		if float64(per[p]) < 0.3*float64(total) {
			t.Errorf("process %s sent %d of %d jobs in the window, want ≥ 30 %%: the processes do not both take from the shared limit", p, per[p], total)
		}
	}

	// Each process's /status shows the fleet, shared in Redis by two.
	var jobs, calls uint64
	for i, p := range procs {
		st := p.status()
		if len(st.Fleets) != 1 {
			t.Fatalf("process %d: /status has %d fleets, want 1", i+1, len(st.Fleets))
		}
		f := st.Fleets[0]
		if f.Name != fleet || f.Mode != "redis" || f.Rate != rate || f.Processes != 2 || f.Share != rate/2 {
			t.Errorf("process %d: fleet status %+v, want %s, redis, rate %g, 2 processes, share %g", i+1, f, fleet, rate, rate/2)
		}
		if w := st.Workers[0]; w.Fleet != fleet || w.FleetMode != "redis" {
			t.Errorf("process %d: worker fleet %q mode %q, want %s, redis", i+1, w.Fleet, w.FleetMode, fleet)
		}
		t.Logf("process %d: fleet %s, %d processes, %d jobs, %d Redis calls (%.3f a job)", i+1, f.Mode, f.Processes,
			f.Dispatched, f.RedisCalls, float64(f.RedisCalls)/max(1, float64(f.Dispatched)))
		jobs += f.Dispatched
		calls += f.RedisCalls
	}
	// A 1s lease holds 20 slots (a second of a process's share): a few
	// Redis calls per hundred jobs.
	if perJob := float64(calls) / float64(jobs); lease == "1s" && perJob > 0.25 {
		t.Errorf("%d Redis calls for %d jobs (%.3f a job) with 1s leases, want ≤ 0.25", calls, jobs, perJob)
	}
	for _, p := range procs {
		p.stop(15 * time.Second)
	}
}

// pacer check names file, line and key of a fleet problem, and reports a
// good fleet config with the fleet of each worker.
func TestCheckFleet(t *testing.T) {
	t.Parallel()
	const good = `[redis]
addr = "127.0.0.1:6379"

[fleet.mailgun]
rate = 40
expected_workers = 4

[[worker]]
name = "a"
fleet = "mailgun"
[worker.source]
kind = "nats"
subject = "x.>"
[worker.sink]
kind = "log"
`
	tests := []struct {
		name, config, want string
		code               int
	}{
		{"good", good, `config.toml: ok: 1 worker: a (nats → log, rate 40/s, base 40/s, fleet mailgun 40/s)`, 0},
		{"undefined fleet", strings.Replace(good, `fleet = "mailgun"`, `fleet = "mailgum"`, 1),
			`config.toml:10: worker "a" fleet: "mailgum": no [fleet.mailgum] table in the file`, 2},
		{"zero fleet rate", strings.Replace(good, "rate = 40", "rate = 0", 1),
			`config.toml:5: fleet "mailgun" rate: 0: want a number in [1e-08, 1e+09] (jobs per second)`, 2},
		{"unknown fleet key", strings.Replace(good, "expected_workers", "expected_worker", 1),
			`config.toml:6: fleet.mailgun.expected_worker: unknown key`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := pacer(t, "check", "--config", path)
			out = strings.TrimSpace(out)
			t.Logf("pacer check: %s", out)
			if code != tt.code {
				t.Errorf("pacer check exit code %d, want %d", code, tt.code)
			}
			if lines := strings.Split(out, "\n"); len(lines) != 1 || !strings.HasPrefix(strings.TrimPrefix(lines[0], filepath.Dir(path)+"/"), tt.want) {
				t.Errorf("pacer check printed %q, want one line starting %q", out, tt.want)
			}
		})
	}
}
