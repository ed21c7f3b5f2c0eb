package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/internal/testenv"
)

// bin is the pacer binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pacer-e2e-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "pacer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// binEnv is the environment the binary runs with: the tests' own, without
// the variables pacer reads (NATS_URL may point the tests' servers at a
// shared NATS, and must not point pacer there too); each test adds what it
// tests.
func binEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "NATS_URL", "REDIS_ADDR", "REDIS_URL", "PACER_ADMIN", "PACER_CONFIG":
		default:
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running `pacer run`.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	admin string
	cfg   string
	log   *testenv.SyncBuffer
	done  chan struct{}
}

// startRun writes config (with {admin} replaced) into a temporary
// directory and starts `pacer run` there; it returns once the admin
// server listens.
func startRun(t *testing.T, dir, config string, args ...string) *proc {
	t.Helper()
	return startRunOn(t, freeAddr(t), dir, config, args...)
}

// startRunOn is startRun with the admin server on admin.
func startRunOn(t *testing.T, admin, dir, config string, args ...string) *proc {
	t.Helper()
	return startRunEnv(t, admin, nil, dir, config, args...)
}

// startRunEnv is startRunOn with env (KEY=VALUE entries) added to the
// binary's environment.
func startRunEnv(t *testing.T, admin string, env []string, dir, config string, args ...string) *proc {
	t.Helper()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, "{admin}", admin)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, admin: admin, cfg: path, log: &testenv.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"run", "--config", path, "--admin", admin}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = binEnv(env...)
	// The admin server listens (and /status answers) before this line.
	listening := newLogWatch("admin listening")
	out := io.MultiWriter(p.log, listening)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("pacer run log:\n%s", tailLines(p.log.String(), 40))
		}
	})
	select {
	case <-listening.seen:
	case <-p.done:
		t.Fatalf("pacer run exited: %v\n%s", p.cmd.ProcessState, p.log.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("pacer run: no %q in its log after 20s\n%s", listening.want, p.log.String())
	}
	// The admin server listens before the brokers start: wait for /readyz,
	// every worker running.
	cl := &http.Client{Timeout: time.Second}
	ready := testenv.Eventually(20*time.Second, func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		resp, err := cl.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-p.done:
		t.Fatalf("pacer run exited: %v\n%s", p.cmd.ProcessState, p.log.String())
	default:
	}
	if !ready {
		t.Fatalf("pacer run: /readyz not ready after 20s\n%s", p.log.String())
	}
	return p
}

// logWatch is a writer that closes seen once what was written contains
// want.
type logWatch struct {
	want string
	seen chan struct{}

	mu   sync.Mutex // guards tail, done
	tail []byte     // the end of the output, shorter than want
	done bool
}

func newLogWatch(want string) *logWatch { return &logWatch{want: want, seen: make(chan struct{})} }

func (w *logWatch) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(b), nil
	}
	buf := append(w.tail, b...)
	if strings.Contains(string(buf), w.want) {
		w.done = true
		close(w.seen)
		return len(b), nil
	}
	w.tail = append([]byte(nil), buf[max(0, len(buf)-len(w.want)+1):]...)
	return len(b), nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) status() status.Status {
	p.t.Helper()
	st, _, err := status.Fetch(p.admin)
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

func (p *proc) signal(s os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatal(err)
	}
}

// stop sends SIGTERM and waits for the exit; it fails the test unless the
// exit code is 0 within limit.
func (p *proc) stop(limit time.Duration) {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("pacer run did not stop %v after SIGTERM", limit)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("pacer run exit code %d after SIGTERM, want 0", code)
	}
}

// pacer runs the binary to completion and returns its output and exit
// code.
func pacer(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = binEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// stamps records the times at which jobs arrive, by job id.
type stamps struct {
	mu    sync.Mutex
	times []time.Time
	ids   map[string]int
}

func (s *stamps) add(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]int{}
	}
	s.times = append(s.times, at)
	s.ids[id]++
}

func (s *stamps) snapshot() ([]time.Time, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		ids[k] = v
	}
	return append([]time.Time(nil), s.times...), ids
}

// in counts the times in [from, from+d).
func in(times []time.Time, from time.Time, d time.Duration) int {
	n := 0
	for _, t := range times {
		if !t.Before(from) && t.Before(from.Add(d)) {
			n++
		}
	}
	return n
}

// readStamps reads "ID UNIXSECONDS" lines that an exec sink appended.
func readStamps(t *testing.T, path string) *stamps {
	t.Helper()
	s := &stamps{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return s
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, ts, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		sec, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		s.add(id, time.Unix(0, int64(sec*1e9)))
	}
	return s
}

func within(t *testing.T, what string, got int, want float64, tol float64) {
	t.Helper()
	if float64(got) < want*(1-tol) || float64(got) > want*(1+tol) {
		t.Errorf("%s: %d, want %.0f ± %.0f %%", what, got, want, tol*100)
	} else {
		t.Logf("%s: %d (want %.0f ± %.0f %%)", what, got, want, tol*100)
	}
}

// httpSink is an httptest server that records each job's arrival; answer
// decides the status of the n-th request (from 1) and its Retry-After.
func httpSink(t *testing.T, answer func(n int) (int, string)) (*httptest.Server, *stamps) {
	t.Helper()
	s := &stamps{}
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		code, retry := http.StatusOK, ""
		if answer != nil {
			code, retry = answer(k)
		}
		if code == http.StatusOK {
			s.add(r.Header.Get("X-Pacer-Job-Id"), time.Now())
		}
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}
