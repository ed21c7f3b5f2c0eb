package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/internal/testenv"
)

// pacerBin is the pacer binary TestMain builds.
var pacerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pacer-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	pacerBin = filepath.Join(dir, "pacer")
	build := exec.Command("go", "build", "-o", pacerBin, "github.com/jobpacer/pacer/cmd/pacer")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "faults: building cmd/pacer:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running pacer binary.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer // stdout and stderr
	done chan struct{}       // closed when it has exited
	err  error               // Wait's, once done
}

// startPacer runs pacer with args (and -c cfg, unless cfg is "") and
// kills it when t's cleanup runs, if it still runs.
func startPacer(t *testing.T, out *testenv.SyncBuffer, cfg string, args ...string) *proc {
	t.Helper()
	if out == nil {
		out = new(testenv.SyncBuffer)
	}
	if cfg != "" {
		args = append(args, "-c", cfg)
	}
	cmd := exec.Command(pacerBin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pacer: %v", err)
	}
	p := &proc{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("pacer output:\n%s", tail(out.String(), 40))
		}
	})
	return p
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit, at most timeout, and returns its
// exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("pacer did not exit within %v", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// waitLog waits until the output holds s.
// stop sends SIGTERM, waits for pacer to exit (at most exitTime),
// reports an exit code other than 0, and returns how long the exit took.
func (p *proc) stop() time.Duration {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	start := time.Now()
	if code := p.wait(exitTime); code != 0 {
		p.t.Errorf("pacer exited %d after SIGTERM, want 0", code)
	}
	return time.Since(start)
}

func (p *proc) waitLog(timeout time.Duration, s string) {
	p.t.Helper()
	testenv.WaitFor(p.t, timeout, fmt.Sprintf("%q in pacer's output", s), func() bool { return strings.Contains(p.out.String(), s) })
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a 127.0.0.1 address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeConfig writes a config.toml into t's temporary directory.
func writeConfig(t *testing.T, format string, args ...any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(format, args...)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fault says how the counting server answers one attempt of a job: a
// status code, or hang (no answer until the client gives up).
type fault func(job string, attempt int) int

const hang = -1

// counter is the downstream: an HTTP server that counts, per job (the
// request body), the attempts and the deliveries it answered 200 to. It
// can go down (its port refuses connections) and come back on the same
// address.
type counter struct {
	t     *testing.T
	addr  string
	fault fault

	mu        sync.Mutex // guards the fields below
	attempts  map[string]int
	delivered map[string]int
	srv       *http.Server
	stopped   chan struct{} // closed when down
}

func newCounter(t *testing.T, f fault) *counter {
	t.Helper()
	c := &counter{t: t, addr: freeAddr(t), fault: f, attempts: map[string]int{}, delivered: map[string]int{}}
	c.up()
	t.Cleanup(c.down)
	return c
}

func (c *counter) url() string { return "http://" + c.addr + "/jobs" }

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	job := string(body)
	c.mu.Lock()
	c.attempts[job]++
	n := c.attempts[job]
	stopped := c.stopped
	c.mu.Unlock()
	code := http.StatusOK
	if c.fault != nil {
		code = c.fault(job, n)
	}
	if code == hang {
		select {
		case <-r.Context().Done():
		case <-stopped:
		}
		return
	}
	if code == http.StatusOK {
		c.mu.Lock()
		c.delivered[job]++
		c.mu.Unlock()
	}
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(code)
}

// up starts serving on addr.
func (c *counter) up() {
	c.t.Helper()
	var l net.Listener
	testenv.WaitFor(c.t, 10*time.Second, "the counter's port to be free again", func() bool {
		var err error
		l, err = net.Listen("tcp", c.addr)
		return err == nil
	})
	c.mu.Lock()
	c.srv = &http.Server{Handler: c}
	c.stopped = make(chan struct{})
	srv := c.srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// down closes the listener and every connection: connections are refused
// until up.
func (c *counter) down() {
	c.mu.Lock()
	srv, stopped := c.srv, c.stopped
	c.srv = nil
	c.mu.Unlock()
	if srv == nil {
		return
	}
	close(stopped)
	_ = srv.Close()
}

// received returns how many distinct jobs were answered 200, and how many
// deliveries that took in all.
func (c *counter) received() (distinct, deliveries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.delivered {
		deliveries += n
	}
	return len(c.delivered), deliveries
}

func (c *counter) totalAttempts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.attempts {
		n += a
	}
	return n
}

// missing returns the jobs of sent never answered 200, sorted.
func (c *counter) missing(sent []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m []string
	for _, j := range sent {
		if c.delivered[j] == 0 {
			m = append(m, j)
		}
	}
	slices.Sort(m)
	return m
}

// waitAll waits until every job of sent was received.
func (c *counter) waitAll(timeout time.Duration, sent []string) {
	c.t.Helper()
	if !testenv.Eventually(timeout, func() bool { d, _ := c.received(); return d >= len(sent) }) {
		m := c.missing(sent)
		c.t.Fatalf("after %v, %d of %d jobs missing (first: %q)", timeout, len(m), len(sent), m[:min(len(m), 5)])
	}
}

// report checks that every job of sent was received once at least, none
// received that was not sent, and logs the scenario's counts.
// drainWith starts a pacer run on cfg, waits until every job of sent has
// arrived, reports the scenario and stops the run: how each scenario ends
// after its fault.
func (c *counter) drainWith(t *testing.T, cfg, scenario string, sent []string) {
	t.Helper()
	p := startPacer(t, nil, cfg, "run")
	c.waitAll(allTime, sent)
	c.report(scenario, sent)
	p.signal(syscall.SIGTERM)
	p.wait(exitTime)
}

func (c *counter) report(scenario string, sent []string) {
	c.t.Helper()
	distinct, deliveries := c.received()
	missing := c.missing(sent)
	c.mu.Lock()
	var unknown int
	for j := range c.delivered {
		if !slices.Contains(sent, j) {
			unknown++
		}
	}
	c.mu.Unlock()
	c.t.Logf("faults: %s: sent %d, received %d distinct, %d deliveries (%d duplicates), %d attempts, %d missing",
		scenario, len(sent), distinct, deliveries, deliveries-distinct, c.totalAttempts(), len(missing))
	if len(missing) != 0 || distinct != len(sent) || unknown != 0 {
		c.t.Errorf("%s: sent %d, received %d distinct (%d not sent), %d missing: want every job sent received", scenario, len(sent), distinct, unknown, len(missing))
	}
}

// jobs returns n unique payloads.
func jobs(t *testing.T, n int) []string {
	prefix := testenv.UniqueName(t)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

// enqueue puts each job into an Asynq queue on the Redis at addr.
func enqueue(t *testing.T, addr, queue, taskType string, js []string) {
	t.Helper()
	cl := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer cl.Close()
	for _, j := range js {
		if _, err := cl.Enqueue(asynq.NewTask(taskType, []byte(j)), asynq.Queue(queue), asynq.MaxRetry(25)); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	}
}

// publish puts each job into a JetStream stream (made if missing) on
// subject.
func publish(t *testing.T, url, stream, subject string, js []string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	j, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := j.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{strings.ToLower(stream) + ".>"}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range js {
		if _, err := j.Publish(ctx, subject, []byte(p)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// fetchStatus reads /status from the admin address.
func fetchStatus(addr string) (status.Status, bool) {
	st, _, err := status.Fetch(addr)
	return st, err == nil
}

// httpGet returns the status code and body of GET url, or 0 on error.
func httpGet(url string) (int, string) {
	cl := &http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// groupGone reports whether no process is left in process group pgid.
func groupGone(pgid int) bool {
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}
