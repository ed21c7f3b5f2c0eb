package main_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/testenv"
)

// pacerIn runs the binary in dir with env added to the environment and
// returns its output and exit code.
func pacerIn(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = binEnv(env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Point 1: every command reads the config a path argument, --config (before
// or after the command) or PACER_CONFIG names; two paths are refused.
func TestConfigPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "config.toml", goodWorker)
	writeFile(t, dir, "bad.toml", strings.Replace(goodWorker, "rate = 10", "rate = -5", 1))
	const bad = `bad.toml:4: worker "a" rate: -5`
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"the default file", nil, []string{"check"}, 0, "config.toml: ok: 1 worker: a"},
		{"a path argument to check", nil, []string{"check", "bad.toml"}, 2, bad},
		{"a path argument to run", nil, []string{"run", "bad.toml"}, 2, bad},
		{"--config after the command", nil, []string{"check", "--config", "bad.toml"}, 2, bad},
		{"-c before the command", nil, []string{"-c", "bad.toml", "check"}, 2, bad},
		{"PACER_CONFIG", []string{"PACER_CONFIG=bad.toml"}, []string{"check"}, 2, bad},
		{"a flag beats PACER_CONFIG", []string{"PACER_CONFIG=bad.toml"}, []string{"check", "-c", "config.toml"}, 0, "config.toml: ok"},
		{"two paths", nil, []string{"check", "-c", "config.toml", "bad.toml"}, 2, "pacer check: two config files: --config config.toml and bad.toml; give one"},
		{"a file that is not there", nil, []string{"check", "nope.toml"}, 2, "nope.toml: no such file or directory"},
		{"a path argument to status", nil, []string{"status", "bad.toml"}, 2, bad},
		{"a path argument to enqueue", nil, []string{"enqueue", "-n", "1", "bad.toml"}, 2, bad},
		{"two path arguments", nil, []string{"publish", "a.toml", "b.toml"}, 2, "pacer publish: want at most one config file, got 2 arguments: a.toml b.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, code := pacerIn(t, dir, tt.env, tt.args...)
			if code != tt.code || !strings.HasPrefix(out, tt.want) {
				t.Errorf("pacer %s: exit %d, %q; want exit %d and output starting %q", strings.Join(tt.args, " "), code, out, tt.code, tt.want)
			}
		})
	}
}

// Point 6: --version, help, help CMD, a suggestion for a typo, completion.
func TestVersionHelpSuggestCompletion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--version"}, 0, []string{"pacer ", runtime.Version()}},
		{[]string{"help"}, 0, []string{"COMMANDS:", "run ", "check ", "status ", "completion ", "$PACER_CONFIG"}},
		{[]string{"help", "run"}, 0, []string{"pacer run - ", "[CONFIG]", "--admin ADDR", "$PACER_ADMIN"}},
		{[]string{"help", "publish"}, 0, []string{"$NATS_URL"}},
		{[]string{"help", "enqueue"}, 0, []string{"$REDIS_ADDR", "$REDIS_URL"}},
		{[]string{"sttaus"}, 2, []string{`"sttaus" is not a command`, `Did you mean "status"?`}},
		{[]string{"check", "--cnfig", "x"}, 2, []string{`Did you mean "--config"?`}},
		{[]string{"completion", "bash"}, 0, []string{"complete -o bashdefault -o default -F _pacer_complete pacer"}},
		{[]string{"completion", "zsh"}, 0, []string{"compdef _pacer pacer"}},
		{[]string{"completion", "fish"}, 0, []string{"complete -c pacer"}},
		{[]string{"--generate-bash-completion"}, 0, []string{"run", "check", "status"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			out, code := pacerIn(t, t.TempDir(), nil, tt.args...)
			if code != tt.code {
				t.Errorf("pacer %s: exit %d, want %d: %s", strings.Join(tt.args, " "), code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("pacer %s does not say %q:\n%s", strings.Join(tt.args, " "), w, out)
				}
			}
		})
	}
}

// Point 6: the connection flags read NATS_URL, REDIS_ADDR/REDIS_URL and
// PACER_ADMIN; an error says where it connected and why there.
func TestEnvVars(t *testing.T) {
	t.Parallel()
	dead := freeAddr(t) // nothing listens
	tests := []struct {
		env  string
		args []string
		want string
	}{
		{"NATS_URL=nats://" + dead, []string{"publish", "-n", "1", "--subject", "x"}, "pacer publish: nats nats://" + dead + " (--nats or NATS_URL)"},
		{"REDIS_ADDR=" + dead, []string{"enqueue", "-n", "1"}, "pacer enqueue: redis " + dead + " (--redis or REDIS_ADDR/REDIS_URL)"},
		{"REDIS_URL=redis://:s3cretpw@" + dead + "/2", []string{"enqueue", "-n", "1"}, "pacer enqueue: redis " + dead + " db 2 (--redis or REDIS_ADDR/REDIS_URL)"},
		{"PACER_ADMIN=" + dead, []string{"status"}, dead},
	}
	// A bad flag is refused before anything connects (exit 2).
	for _, args := range [][]string{{"enqueue", "-r", "-5"}, {"publish", "--rate", "-1", "--subject", "x"}, {"enqueue", "-n", "0"}} {
		out, code := pacerIn(t, t.TempDir(), []string{"REDIS_ADDR=" + dead, "NATS_URL=nats://" + dead}, args...)
		if code != 2 || !strings.Contains(out, "want") || strings.Contains(out, dead) {
			t.Errorf("pacer %s: exit %d, %q; want exit 2 naming the flag, before connecting", strings.Join(args, " "), code, out)
		}
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Parallel()
			out, code := pacerIn(t, t.TempDir(), []string{tt.env}, tt.args...)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("%s pacer %s: exit %d, %q; want exit 1 naming %q", tt.env, strings.Join(tt.args, " "), code, out, tt.want)
			}
			if strings.Contains(out, "s3cretpw") {
				t.Errorf("the password in REDIS_URL is shown:\n%s", out)
			}
			if strings.Contains(out, "redis: 20") {
				t.Errorf("go-redis's own log lines before pacer's error:\n%s", out)
			}
		})
	}
}

// idemSink is an http sink that records each request's Idempotency-Key and
// X-Pacer-Job-Id.
type idemSink struct {
	mu   sync.Mutex
	keys map[string]string // Idempotency-Key → X-Pacer-Job-Id
	n    int
}

func newIdemSink(t *testing.T) (*httptest.Server, *idemSink) {
	s := &idemSink{keys: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.keys[r.Header.Get("Idempotency-Key")] = r.Header.Get("X-Pacer-Job-Id")
		s.n++
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func (s *idemSink) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.n }

// Point 2: pacer enqueue and pacer publish, run beside the config of a
// running pacer run on embedded brokers, reach that run's brokers and the
// queue and subject of its workers, with no flag. The http sink gets each
// job's id as its Idempotency-Key: the Asynq task id, the JetStream
// stream's name, creation time and sequence.
func TestLoadGeneratorsReachTheRunningDemo(t *testing.T) {
	t.Parallel()
	srv, got := newIdemSink(t)
	dir := t.TempDir()
	p := startRun(t, dir, fmt.Sprintf(`
admin = "{admin}"
status_every = "0s"
[redis]
addr = "embedded"
[nats]
url = "embedded"
[[worker]]
name = "mail"
rate = 50
[worker.source]
kind = "asynq"
queue = "mail"
[worker.sink]
kind = "http"
url = %q
[[worker]]
name = "hooks"
rate = 50
[worker.source]
kind = "jetstream"
stream = "HOOKS"
[worker.sink]
kind = "http"
url = %q
`, srv.URL, srv.URL))
	st := p.status()
	for _, args := range [][]string{{"enqueue", "-n", "5", "-q"}, {"publish", "-n", "5", "-q"}} {
		out, code := pacerIn(t, dir, nil, args...)
		if code != 0 {
			t.Fatalf("pacer %s beside the running demo: exit %d: %s", args[0], code, out)
		}
		t.Logf("pacer %s: %s", args[0], strings.TrimSpace(out))
		want := map[string]string{
			"enqueue": "enqueued 5 jobs to redis " + st.Embedded["redis"] + " queue mail",
			"publish": "published 5 jobs to nats " + st.Embedded["nats"] + " subject hooks.demo (JetStream)",
		}[args[0]]
		if !strings.Contains(out, want) {
			t.Errorf("pacer %s: %q, want it to say %q", args[0], out, want)
		}
	}
	testenv.WaitFor(t, 20*time.Second, "10 jobs at the http sink", func() bool { return got.count() >= 10 })
	got.mu.Lock()
	defer got.mu.Unlock()
	var seqs []string
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	nUUID := 0
	for k, id := range got.keys {
		if k == "" || k != id {
			t.Errorf("Idempotency-Key %q, job id %q: want the job id", k, id)
		}
		if uuid.MatchString(k) {
			nUUID++ // an Asynq task id
		} else {
			seqs = append(seqs, k)
		}
	}
	// HOOKS:<the stream's creation, Unix ns>:<sequence>
	jsID := regexp.MustCompile(`^HOOKS:[0-9]+:([0-9]+)$`)
	var nums []string
	for _, k := range seqs {
		if m := jsID.FindStringSubmatch(k); m != nil {
			nums = append(nums, m[1])
		}
	}
	sort.Slice(nums, func(i, j int) bool { a, _ := strconv.Atoi(nums[i]); b, _ := strconv.Atoi(nums[j]); return a < b })
	if nUUID != 5 || len(seqs) != 5 || strings.Join(nums, ",") != "1,2,3,4,5" {
		t.Errorf("Idempotency-Keys: %d Asynq task ids and JetStream ids %v, want 5 and HOOKS:<created>:1..5", nUUID, seqs)
	}
}

// Point 4: check --connect dials every broker and sink and says which
// answer; without --connect nothing is dialled.
func TestCheckConnect(t *testing.T) {
	t.Parallel()
	redis := testenv.Redis(t) // a Redis that answers (or, under CI, the test fails)
	dead := freeAddr(t)
	dir := t.TempDir()
	writeFile(t, dir, "config.toml", fmt.Sprintf(`
[redis]
addr = %q
[nats]
url = "nats://%s"
[[worker]]
name = "a"
rate = 5
[worker.source]
kind = "asynq"
[worker.sink]
kind = "http"
url = "http://%s/jobs"
[[worker]]
name = "b"
rate = 5
[worker.source]
kind = "nats"
subject = "x"
[worker.sink]
kind = "log"
`, redis, dead, dead))
	if out, code := pacerIn(t, dir, nil, "check"); code != 0 {
		t.Fatalf("pacer check (no --connect): exit %d: %s", code, out)
	}
	out, code := pacerIn(t, dir, nil, "check", "--connect")
	t.Log(out)
	for _, w := range []string{
		"redis: ok: redis " + redis,
		fmt.Sprintf("nats: FAILED: nats nats://%s (config.toml:5 nats.url): nats: no servers available", dead),
		`worker "a" http sink: FAILED: http://` + dead + "/jobs",
		"pacer check --connect: 2 addresses did not answer",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("pacer check --connect does not say %q", w)
		}
	}
	if code != 1 {
		t.Errorf("pacer check --connect with dead addresses: exit %d, want 1", code)
	}
}

// Point 4: check refuses, without running anything, what would fail at run
// time: an exec command that is not there.
func TestCheckRefusesMissingCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "config.toml", strings.Replace(goodWorker, "[worker.sink]\nkind = \"log\"\n",
		"[worker.sink]\nkind = \"exec\"\ncommand = [\"./handle.sh\"]\n", 1))
	out, code := pacerIn(t, dir, nil, "check")
	want := `config.toml:12: worker "a" sink command: ["./handle.sh"]: want a program that exists and is executable`
	if code != 2 || !strings.HasPrefix(out, want) {
		t.Errorf("pacer check: exit %d, %q; want exit 2 and %q", code, out, want)
	}
}

// Point 9: a second pacer run on a busy admin port fails before it starts
// a broker, and says how to pick another port.
func TestBusyAdminPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	writeFile(t, dir, "config.toml", fmt.Sprintf("admin = %q\n[nats]\nurl = \"embedded\"\n", ln.Addr())+goodWorker)
	out, code := pacerIn(t, dir, nil, "run")
	if code != 1 {
		t.Errorf("pacer run on a busy admin port: exit %d, want 1", code)
	}
	for _, w := range []string{"admin address " + ln.Addr().String() + " is in use", "--admin HOST:PORT", "PACER_ADMIN"} {
		if !strings.Contains(out, w) {
			t.Errorf("pacer run does not say %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "nats-server") || strings.Contains(out, "worker started") || strings.Contains(out, "embedded") {
		t.Errorf("pacer run started something before it failed on the admin port:\n%s", out)
	}
}

// Issue 24 item 6: pacer run against a broker nothing listens on fails
// with the config line of the address, and one "worker" prefix.
func TestRunUnreachableBrokerNamesTheLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, broker, source, want string
	}{
		{"redis", "[redis]\naddr = %q\n", "kind = \"asynq\"\nqueue = \"emails\"",
			`pacer: worker "emails": asynq source: redis %s (config.toml:4 redis.addr): dial tcp %[1]s: connect: connection refused`},
		{"nats", "[nats]\nurl = \"nats://%s\"\n", "kind = \"jetstream\"\nstream = \"EMAILS\"",
			`pacer: worker "emails": nats nats://%s (config.toml:4 nats.url): nats: no servers available for connection`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dead := freeAddr(t)
			dir := t.TempDir()
			writeFile(t, dir, "config.toml", "admin = \"\"\n\n"+fmt.Sprintf(tt.broker, dead)+`
[[worker]]
name = "emails"
rate = 5
[worker.source]
`+tt.source+`
[worker.sink]
kind = "log"
`)
			out, code := pacerIn(t, dir, nil, "run")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if want := fmt.Sprintf(tt.want, dead); code != 1 || last != want {
				t.Errorf("pacer run: exit %d, last line\n%s\nwant exit 1 and\n%s\n(all: %s)", code, last, want, out)
			}
			if strings.Contains(out, "worker: ") {
				t.Errorf("pacer run says \"worker: \" (a doubled prefix):\n%s", out)
			}
		})
	}
}

// Points 5 and 8: at the default level (info) the log has no line per job
// and one line per pace cut or pause, with the numbers (package pacer
// writes them to the logger the runner gives it); after the run, the
// counters of the stopped line, /status and /metrics are the same, and an
// idle JetStream worker has nothing in flight.
func TestLogAtInfoAndCountersAgree(t *testing.T) {
	t.Parallel()
	nats := testenv.NATS(t)
	// Pushback twice, more than a second apart at rate 40: requests 10 and
	// 60 get 429, retry after 1 s (a cut each, no pause: shorter than
	// pause_after).
	srv, _ := httpSink(t, func(n int) (int, string) {
		if n == 10 || n == 60 {
			return http.StatusTooManyRequests, "1"
		}
		return http.StatusOK, ""
	})
	stream := strings.ToUpper(testenv.UniqueName(t))
	dir := t.TempDir()
	p := startRun(t, dir, fmt.Sprintf(`
admin = "{admin}"
status_every = "1s"
[nats]
url = %q
[[worker]]
name = "hooks"
rate = 40
max_in_flight = 4
[worker.source]
kind = "jetstream"
stream = %q
[worker.sink]
kind = "http"
url = %q
`, nats.URL(), stream, srv.URL))
	const n = 80
	if out, code := pacerIn(t, dir, nil, "publish", "-n", strconv.Itoa(n), "-q"); code != 0 {
		t.Fatalf("pacer publish: exit %d: %s", code, out)
	}
	testenv.WaitFor(t, 30*time.Second, "every job done", func() bool { return p.status().Workers[0].Succeeded == n })
	st := p.status().Workers[0]
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.stop(15 * time.Second)
	log := p.log.String()

	if st.Throttled != 2 || st.InFlight != 0 || st.Cuts+st.Pauses == 0 {
		t.Errorf("status: throttled %d, in flight %d, cuts %d, pauses %d; want 2, 0 and a cut or a pause", st.Throttled, st.InFlight, st.Cuts, st.Pauses)
	}
	if c := strings.Count(log, `msg=job`) + strings.Count(log, `msg="job `); c != 0 {
		t.Errorf("%d per-job lines at info, want 0", c)
	}
	count := func(re string) (lines, sum int) {
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(log, -1) {
			lines++
			sum++
			if len(m) > 1 && m[1] != "" {
				k, _ := strconv.Atoi(m[1])
				sum += k
			}
		}
		return lines, sum
	}
	cutLines, cuts := count(`msg="pacer: pace lowered" worker=hooks [^\n]*?(?:more_cuts=(\d+))?\n`)
	// Cuts within a minute of the first INFO line are summed up (at the
	// latest when the run stops).
	for _, m := range regexp.MustCompile(`msg="pacer: pace lowered \(summary\)" worker=hooks cuts=(\d+)`).FindAllStringSubmatch(log, -1) {
		k, _ := strconv.Atoi(m[1])
		cutLines, cuts = cutLines+1, cuts+k
	}
	pauseLines, _ := count(`msg="pacer: paused by pushback" worker=hooks`)
	if cuts != int(st.Cuts) || pauseLines != int(st.Pauses) {
		t.Errorf("log: %d cut lines for %d cuts, %d pause lines; /status: %d cuts, %d pauses; want one line per event\n%s", cutLines, cuts, pauseLines, st.Cuts, st.Pauses, log)
	}
	stopped := regexp.MustCompile(`msg=stopped worker=hooks dispatched=(\d+) done=(\d+) failed=(\d+) throttled=(\d+) dropped=\d+ in_flight=(\d+)`).FindStringSubmatch(log)
	if stopped == nil {
		t.Fatalf("no stopped line for worker hooks:\n%s", log)
	}
	metric := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\{worker="hooks"\} (\S+)$`).FindSubmatch(metrics)
		if m == nil {
			t.Fatalf("no %s in /metrics", name)
		}
		return string(m[1])
	}
	for _, c := range []struct {
		what, log, metric string
		status            uint64
	}{
		{"done", stopped[2], metric("pacer_jobs_succeeded_total"), st.Succeeded},
		{"failed", stopped[3], metric("pacer_jobs_failed_total"), st.Failed},
		{"throttled", stopped[4], metric("pacer_jobs_throttled_total"), st.Throttled},
		{"in flight", stopped[5], metric("pacer_in_flight_jobs"), uint64(st.InFlight)},
	} {
		s := strconv.FormatUint(c.status, 10)
		if c.log != s || c.metric != s {
			t.Errorf("%s: stopped line %s, /status %s, /metrics %s: want one number", c.what, c.log, s, c.metric)
		}
	}
}
