package main_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jobpacer/pacer/internal/testenv"
)

// remotePorts returns the remote TCP ports of the sockets process pid
// holds, from /proc (Linux only).
func remotePorts(t *testing.T, pid int) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || !inodes[fs[9]] {
				continue
			}
			if _, port, ok := strings.Cut(fs[2], ":"); ok {
				if p, err := strconv.ParseInt(port, 16, 32); err == nil && p != 0 {
					ports[int(p)] = true
				}
			}
		}
		fh.Close()
	}
	return ports
}

// The default config runs with nothing installed: embedded Redis and NATS,
// jobs flowing within 10 s, never a connection to 6379 or 4222, and a
// clean stop on SIGTERM.
func TestDefaultConfigRunsOnEmbeddedBrokers(t *testing.T) {
	t.Parallel()
	cfg, err := os.ReadFile("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startRun(t, t.TempDir(), string(cfg))
	seen := map[int]bool{}
	testenv.WaitFor(t, 10*time.Second-time.Since(start), "jobs flowing in every worker of the default config", func() bool {
		if runtime.GOOS == "linux" {
			for port := range remotePorts(t, p.cmd.Process.Pid) {
				seen[port] = true
			}
		}
		st := p.status()
		for _, w := range st.Workers {
			if w.Succeeded == 0 {
				return false
			}
		}
		return len(st.Workers) == 2
	})
	t.Logf("jobs flowing after %v; embedded brokers %v", time.Since(start).Round(time.Millisecond), p.status().Embedded)
	if seen[6379] || seen[4222] {
		t.Errorf("pacer run on the default config connected to remote ports %v, want neither 6379 nor 4222", seen)
	}
	if runtime.GOOS == "linux" && len(seen) == 0 {
		t.Errorf("saw no TCP connection at all: the socket check is broken")
	}
	p.stop(15 * time.Second)
	if log := p.log.String(); !strings.Contains(log, "msg=stopped") {
		t.Errorf("no stopped line in the log:\n%s", tailLines(log, 10))
	}
}

// Jobs put in an Asynq queue by `pacer enqueue` reach an exec sink at the
// configured pace, all of them, and /metrics parses.
func TestAsynqToExecAtPace(t *testing.T) {
	t.Parallel()
	redis := testenv.Redis(t)
	dir := t.TempDir()
	queue := testenv.UniqueName(t)
	out := filepath.Join(dir, "jobs.txt")
	p := startRun(t, dir, fmt.Sprintf(`
status_every = "0s"
[redis]
addr = %q
[[worker]]
name = "mail"
rate = 20
max_in_flight = 8
[worker.source]
kind = "asynq"
queue = %q
[worker.sink]
kind = "exec"
command = ["sh", "-c", "echo \"$PACER_JOB_ID $(date +%%s.%%N)\" >> %s"]
`, redis, queue, out))
	const n = 160
	if o, code := pacer(t, "enqueue", "--redis", redis, "--queue", queue, "-n", strconv.Itoa(n), "--payload", `{"i":{n}}`); code != 0 {
		t.Fatalf("pacer enqueue: exit %d: %s", code, o)
	}
	var times []time.Time
	testenv.WaitFor(t, 30*time.Second, "the first jobs", func() bool { times, _ = readStamps(t, out).snapshot(); return len(times) >= 5 })
	// Count over 5 s, starting 1 s after the first job.
	from := times[0].Add(time.Second)
	time.Sleep(time.Until(from.Add(5*time.Second + 500*time.Millisecond)))
	times, _ = readStamps(t, out).snapshot()
	within(t, "exec sink jobs in 5 s at rate 20", in(times, from, 5*time.Second), 100, 0.05)

	// /metrics is valid Prometheus text with the worker's series.
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"pacer_pace_jobs_per_second", "pacer_factor", "pacer_backlog_jobs", "pacer_in_flight_jobs",
		"pacer_jobs_dispatched_total", "pacer_jobs_succeeded_total", "pacer_jobs_throttled_total", "pacer_ceiling_jobs_per_second",
		"pacer_goodput_jobs_per_second", "pacer_capacity_jobs_per_second", "pacer_cuts_total"} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetLabel()[0].GetValue() != "mail" {
			t.Errorf("/metrics: %s missing or without worker=\"mail\": %v", name, f)
		}
	}
	if r := fams["pacer_pace_reason"]; r == nil || len(r.GetMetric()) != 4 {
		t.Errorf("/metrics: pacer_pace_reason missing or not one series per reason: %v", r)
	} else {
		for _, m := range r.GetMetric() {
			if m.GetGauge().GetValue() == 1 && m.GetLabel()[0].GetValue() != "ceiling" && m.GetLabel()[1].GetValue() != "ceiling" {
				t.Errorf("/metrics: pacer_pace_reason %v = 1, want the ceiling (rate 20, no pushback)", m.GetLabel())
			}
		}
	}
	if c := fams["pacer_jobs_dispatched_total"]; c != nil && c.GetType().String() != "COUNTER" {
		t.Errorf("pacer_jobs_dispatched_total is a %v, want a counter", c.GetType())
	}
	if g := fams["pacer_pace_jobs_per_second"]; g != nil {
		if v := g.GetMetric()[0].GetGauge().GetValue(); v != 20 {
			t.Errorf("pacer_pace_jobs_per_second = %v, want 20", v)
		}
	}

	testenv.WaitFor(t, 20*time.Second, "every job", func() bool { _, ids := readStamps(t, out).snapshot(); return len(ids) >= n })
	_, ids := readStamps(t, out).snapshot()
	if len(ids) != n {
		t.Errorf("%d distinct jobs reached the sink, want %d", len(ids), n)
	}
	p.stop(15 * time.Second)
}

// Jobs published to a JetStream stream by `pacer publish` reach an http
// sink at the configured pace; a downstream that answers 429 with a short
// Retry-After lowers the pace a little (it is at its limit) without idling
// the worker, the throttled jobs come back after it, and no job is lost.
func TestJetStreamToHTTP(t *testing.T) {
	t.Parallel()
	nats := testenv.NATS(t)
	for _, throttle := range []bool{false, true} {
		t.Run(fmt.Sprintf("throttle=%v", throttle), func(t *testing.T) {
			t.Parallel()
			answer := func(n int) (int, string) { return http.StatusOK, "" }
			if throttle {
				// Pushback twice: requests 30 and 60 get 429, retry after 2 s,
				// under pause_after (5s): each lowers the pace, none pauses.
				answer = func(n int) (int, string) {
					if n == 30 || n == 60 {
						return http.StatusTooManyRequests, "2"
					}
					return http.StatusOK, ""
				}
			}
			srv, got := httpSink(t, answer)
			stream := strings.ToUpper(testenv.UniqueName(t))
			subj := strings.ToLower(stream) + ".job"
			dir := t.TempDir()
			p := startRun(t, dir, fmt.Sprintf(`
status_every = "0s"
[nats]
url = %q
[[worker]]
name = "hooks"
rate = 20
default_retry_after = "2s"
[worker.source]
kind = "jetstream"
stream = %q
subjects = [%q]
[worker.sink]
kind = "http"
url = %q
timeout = "5s"
`, nats.URL(), stream, subj, srv.URL))
			const n = 200
			if o, code := pacer(t, "publish", "--nats", nats.URL(), "--subject", subj, "--jetstream", "-n", strconv.Itoa(n)); code != 0 {
				t.Fatalf("pacer publish: exit %d: %s", code, o)
			}
			var times []time.Time
			testenv.WaitFor(t, 30*time.Second, "the first jobs", func() bool { times, _ = got.snapshot(); return len(times) >= 5 })
			from := times[0].Add(time.Second)
			time.Sleep(time.Until(from.Add(6*time.Second + 300*time.Millisecond)))
			times, _ = got.snapshot()
			count := in(times, from, 6*time.Second)
			if !throttle {
				within(t, "http sink jobs in 6 s at rate 20", count, 120, 0.05)
			} else {
				// Two cuts to just under the good rate, no pause: close to 120.
				if count < 100 {
					t.Errorf("http sink jobs in 6 s with two 429s: %d, want ≥ 100 (120 without pushback): a 429 at the limit must not idle the worker", count)
				}
				t.Logf("http sink jobs in 6 s with two 429s (Retry-After 2): %d (120 without)", count)
			}
			testenv.WaitFor(t, 40*time.Second, "every job", func() bool { _, ids := got.snapshot(); return len(ids) >= n })
			_, ids := got.snapshot()
			if len(ids) != n {
				t.Errorf("%d distinct jobs handled, want %d", len(ids), n)
			}
			st := p.status().Workers[0]
			if throttle && (st.Throttled != 2 || st.Cuts != 2 || st.Pauses != 0) {
				t.Errorf("status: throttled %d, cuts %d, pauses %d; want 2, 2 and 0", st.Throttled, st.Cuts, st.Pauses)
			}
			// The stream pacer run created is a work queue: a job is
			// removed once acked, not kept for ever.
			js := testenv.JetStream(t, nats.URL())
			info, err := js.Stream(t.Context(), stream)
			if err != nil {
				t.Fatalf("the stream pacer run created: %v", err)
			}
			if cfg := info.CachedInfo().Config; cfg.Retention != jetstream.WorkQueuePolicy || cfg.MaxAge != 0 {
				t.Errorf("the stream pacer run created: retention %v, max_age %v; want workqueue, 0", cfg.Retention, cfg.MaxAge)
			}
			testenv.WaitFor(t, 10*time.Second, "the stream empty once every job is acked", func() bool {
				si, err := info.Info(t.Context())
				return err == nil && si.State.Msgs == 0
			})
			p.stop(15 * time.Second)
		})
	}
}

// SIGHUP with a new rate changes the measured pace within two sample
// periods; a structural change is refused and changes nothing.
func TestSIGHUPReloadsRate(t *testing.T) {
	t.Parallel()
	nats := testenv.NATS(t)
	srv, got := httpSink(t, nil)
	stream := strings.ToUpper(testenv.UniqueName(t))
	subj := strings.ToLower(stream) + ".job"
	dir := t.TempDir()
	config := `
status_every = "0s"
[nats]
url = %q
[[worker]]
name = "hooks"
rate = %d
period = "1s"
[worker.source]
kind = "jetstream"
stream = %q
subjects = [%q]
[worker.sink]
kind = "http"
url = %q
`
	p := startRun(t, dir, fmt.Sprintf(config, nats.URL(), 10, stream, subj, srv.URL))
	if o, code := pacer(t, "publish", "--nats", nats.URL(), "--subject", subj, "--jetstream", "-n", "400", "-q"); code != 0 {
		t.Fatalf("pacer publish: exit %d: %s", code, o)
	}
	testenv.WaitFor(t, 30*time.Second, "the first jobs", func() bool { times, _ := got.snapshot(); return len(times) >= 10 })
	time.Sleep(3 * time.Second)
	before := time.Now()
	times, _ := got.snapshot()
	within(t, "jobs in the 2 s before SIGHUP at rate 10", in(times, before.Add(-2*time.Second), 2*time.Second), 20, 0.15)

	// A structural change (the sink's url) is refused, and says nothing
	// was applied (a rate changed with it would be applied: see
	// internal/runner's TestReloadAppliesRateAndRefusesMaxInFlight).
	bad := strings.Replace(fmt.Sprintf(config, nats.URL(), 10, stream, subj, srv.URL), srv.URL, srv.URL+"/other", 1)
	if err := os.WriteFile(p.cfg, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	testenv.WaitFor(t, 5*time.Second, "the refusal in the log", func() bool { return strings.Contains(p.log.String(), "reload refused: nothing applied") })
	if c := p.status().Workers[0].Ceiling; c != 10 {
		t.Fatalf("after a refused reload the ceiling is %g, want 10", c)
	}

	if err := os.WriteFile(p.cfg, []byte(fmt.Sprintf(config, nats.URL(), 40, stream, subj, srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	hup := time.Now()
	p.signal(syscall.SIGHUP)
	// Within two sample periods (2 s) the pace is the new one: count over
	// the 3 s after that.
	time.Sleep(time.Until(hup.Add(5*time.Second + 300*time.Millisecond)))
	times, _ = got.snapshot()
	within(t, "jobs in 3 s starting 2 s after SIGHUP to rate 40", in(times, hup.Add(2*time.Second), 3*time.Second), 120, 0.05)
	p.stop(15 * time.Second)
}

// SIGTERM mid-run drains and exits 0; a second run finishes the queue;
// every job reached the sink.
func TestSIGTERMLosesNothing(t *testing.T) {
	t.Parallel()
	redis := testenv.Redis(t)
	nats := testenv.NATS(t)
	for _, kind := range []string{"asynq", "jetstream"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := filepath.Join(dir, "jobs.txt")
			name := testenv.UniqueName(t)
			source := fmt.Sprintf("kind = \"asynq\"\nqueue = %q", name)
			if kind == "jetstream" {
				source = fmt.Sprintf("kind = \"jetstream\"\nstream = %q\nsubjects = [\"%s.>\"]", strings.ToUpper(name), strings.ToLower(name))
			}
			config := fmt.Sprintf(`
status_every = "0s"
drain_timeout = "10s"
[redis]
addr = %q
[nats]
url = %q
[[worker]]
name = "w"
rate = 40
max_in_flight = 6
[worker.source]
%s
[worker.sink]
kind = "exec"
# each job takes 300 ms, so SIGTERM finds jobs in flight
command = ["sh", "-c", "sleep 0.3; echo \"$PACER_JOB_ID $(date +%%s.%%N)\" >> %s"]
`, redis, nats.URL(), source, out)
			p := startRun(t, dir, config)
			const n = 120
			args := []string{"enqueue", "--redis", redis, "--queue", name}
			if kind == "jetstream" {
				args = []string{"publish", "--nats", nats.URL(), "--subject", strings.ToLower(name) + ".job", "--jetstream"}
			}
			if o, code := pacer(t, append(args, "-n", strconv.Itoa(n), "-q")...); code != 0 {
				t.Fatalf("pacer %s: exit %d: %s", args[0], code, o)
			}
			testenv.WaitFor(t, 30*time.Second, "20 jobs", func() bool { _, ids := readStamps(t, out).snapshot(); return len(ids) >= 20 })
			inflight := p.status().Workers[0].InFlight
			p.stop(20 * time.Second)
			_, ids := readStamps(t, out).snapshot()
			t.Logf("SIGTERM with %d in flight: %d jobs done in the first run", inflight, len(ids))
			if len(ids) >= n {
				t.Fatalf("all %d jobs were done before SIGTERM: the test proves nothing", n)
			}
			p2 := startRun(t, dir, config)
			testenv.WaitFor(t, 40*time.Second, "every job after the restart", func() bool { _, ids := readStamps(t, out).snapshot(); return len(ids) >= n })
			p2.stop(15 * time.Second)
			_, ids = readStamps(t, out).snapshot()
			if len(ids) != n {
				t.Errorf("%d distinct jobs reached the sink, want %d", len(ids), n)
			}
		})
	}
}
