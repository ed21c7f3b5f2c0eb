package runner_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/admin"
	"github.com/jobpacer/pacer/internal/brokers"
	_ "github.com/jobpacer/pacer/internal/embedded" // the embedded Redis of the fleet test
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/runner"
	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// loopSource is a source that always has a job: a backlogged queue with
// no broker.
type loopSource struct{}

func (loopSource) Connect(context.Context) (pacer.Probe, error) { return nil, nil }

func (loopSource) Run(ctx context.Context, env plugin.Env) error {
	for n := 1; ; n++ {
		pm, err := env.Pacer.Acquire(ctx, 1)
		if err != nil {
			return nil
		}
		pm.Done(env.Handle(sink.Job{ID: strconv.Itoa(n), Type: "loop", Attempt: 1, Worker: env.Worker}))
	}
}

// counter counts the jobs a worker's sink handled; tenth is closed at the
// tenth.
type counter struct {
	n     atomic.Int64
	tenth chan struct{}
}

func (c *counter) add() {
	if c.n.Add(1) == 10 {
		close(c.tenth)
	}
}

var handled sync.Map // worker name → *counter

// handledBy returns the counter of the sink of worker name.
func handledBy(name string) *counter {
	c, _ := handled.LoadOrStore(name, &counter{tenth: make(chan struct{})})
	return c.(*counter)
}

func init() {
	plugin.RegisterSource("loop", func(o plugin.Options) (plugin.Source, error) {
		return loopSource{}, o.Decode(&struct{}{})
	})
	plugin.RegisterSink("count", func(o plugin.Options) (sink.Sink, error) {
		c := handledBy(o.WorkerName())
		return sink.Func(func(context.Context, sink.Job) error { c.add(); return nil }), o.Decode(&struct{}{})
	})
}

const fleetConfig = `
admin = ""
status_every = "0s"
[redis]
addr = %q

[fleet.mail]
rate = %g
expected_workers = 4

[[worker]]
name = "%[3]s_a"
fleet = "mail"
[worker.source]
kind = "loop"
[worker.sink]
kind = "count"

[[worker]]
name = "%[3]s_b"
fleet = "mail"
burst = %[4]d
[worker.source]
kind = "loop"
[worker.sink]
kind = "count"

[[worker]]
name = "%[3]s_solo"
rate = 50
[worker.source]
kind = "loop"
[worker.sink]
kind = "count"
`

func writeConfig(t *testing.T, path, redis string, rate float64, prefix string, burst int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(fmt.Sprintf(fleetConfig, redis, rate, prefix, burst)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startRunner runs the config at path in this process until the test ends.
func startRunner(t *testing.T, path string) (*runner.Runner, *testenv.SyncBuffer) {
	t.Helper()
	f, err := plugin.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	r := runner.New(f, slog.New(slog.NewTextHandler(logs, nil)), runner.RunOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("Run() = %v before it was ready\n%s", err, logs)
	case <-time.After(10 * time.Second):
		t.Fatalf("Runner not ready after 10s\n%s", logs)
	}
	return r, logs
}

func workerStatus(t *testing.T, st status.Status, name string) status.WorkerStatus {
	t.Helper()
	for _, w := range st.Workers {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("no worker %q in status", name)
	return status.WorkerStatus{}
}

// Workers that name the same fleet share one bucket on the config's Redis
// (here the embedded one); /status and /metrics show it; SIGHUP's Reload
// changes the fleet's rate in place and refuses other fleet changes.
func TestFleetSharedByWorkers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	p := "shared"
	writeConfig(t, path, brokers.Embedded, 200, p, 1)
	r, logs := startRunner(t, path)

	limit := time.After(10 * time.Second)
	for _, name := range []string{p + "_a", p + "_b"} {
		select {
		case <-handledBy(name).tenth:
		case <-limit:
			t.Fatalf("the fleet's workers did not handle 10 jobs each in 10s: %+v\n%s", r.Status().Workers, logs)
		}
	}

	st := r.Status()
	if len(st.Fleets) != 1 {
		t.Fatalf("status has %d fleets, want 1: %+v", len(st.Fleets), st.Fleets)
	}
	fs := st.Fleets[0]
	if fs.Name != "mail" || fs.Mode != "redis" || fs.Rate != 200 || fs.Processes != 1 || fs.Share != 50 ||
		strings.Join(fs.Workers, ",") != p+"_a,"+p+"_b" {
		t.Errorf("fleet status = %+v, want mail, redis, rate 200, 1 process, share 50 (200 ÷ expected_workers 4), workers %s_a,%s_b", fs, p, p)
	}
	for _, name := range []string{p + "_a", p + "_b"} {
		if w := workerStatus(t, st, name); w.Fleet != "mail" || w.FleetMode != "redis" {
			t.Errorf("worker %s: fleet %q, mode %q, want mail, redis", name, w.Fleet, w.FleetMode)
		}
	}
	if w := workerStatus(t, st, p+"_solo"); w.Fleet != "" || w.FleetMode != "" {
		t.Errorf("worker %s_solo: fleet %q, mode %q, want none", p, w.Fleet, w.FleetMode)
	}
	if !strings.Contains(logs.String(), "fleet on the embedded Redis") {
		t.Errorf("no warning that an embedded Redis shares the fleet with this process only:\n%s", logs)
	}

	srv := httptest.NewServer(admin.Handler(r.Status, r.Samples))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`pacer_fleet_mode{fleet="mail",mode="redis"} 1`, `pacer_fleet_mode{fleet="mail",mode="fallback"} 0`,
		`pacer_fleet_rate_jobs_per_second{fleet="mail"} 200`, `pacer_fleet_processes{fleet="mail"} 1`, `pacer_fleet_jobs_dispatched_total{fleet="mail"}`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	var table bytes.Buffer
	status.WriteTable(&table, "here", st)
	if !strings.Contains(table.String(), "FLEET") || !strings.Contains(table.String(), p+"_a,"+p+"_b") {
		t.Errorf("status table has no fleet row:\n%s", table.String())
	}

	// A changed fleet rate is applied in place.
	writeConfig(t, path, brokers.Embedded, 100, p, 1)
	f, err := plugin.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(f); err != nil {
		t.Fatalf("Reload(rate 200 → 100) = %v, want nil", err)
	}
	st = r.Status()
	if got := st.Fleets[0].Rate; got != 100 {
		t.Errorf("fleet rate after reload = %g, want 100", got)
	}
	// The workers' rate defaults to the fleet's: it follows.
	if got := workerStatus(t, st, p+"_a").Ceiling; got != 100 {
		t.Errorf("worker %s_a ceiling after reload = %g, want 100 (its fleet's rate)", p, got)
	}

	// Any other fleet change is structural.
	if err := os.WriteFile(path, []byte(strings.Replace(fmt.Sprintf(fleetConfig, brokers.Embedded, 100.0, p, 1), "expected_workers = 4", "expected_workers = 5", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err = plugin.Load(path); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(f); err == nil || !strings.Contains(err.Error(), `fleet "mail": a setting other than rate changed`) {
		t.Errorf("Reload(expected_workers 4 → 5) = %v, want a refusal naming fleet \"mail\"", err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(fmt.Sprintf(fleetConfig, brokers.Embedded, 100.0, p, 1), "name = \"shared_b\"\nfleet = \"mail\"", "name = \"shared_b\"\nrate = 100", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err = plugin.Load(path); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(f); err == nil || !strings.Contains(err.Error(), `worker "shared_b": its fleet changed ("mail" → "")`) {
		t.Errorf("Reload(worker b leaves the fleet) = %v, want a refusal naming worker shared_b", err)
	}
	if got := r.Status().Fleets[0].Rate; got != 100 {
		t.Errorf("fleet rate after refused reloads = %g, want 100", got)
	}
}

// A fleet whose Redis cannot be reached does not stop the run: its
// workers run at their share of the limit (rate ÷ expected_workers), and
// /status says fallback.
func TestFleetFallbackWithoutRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	path := filepath.Join(t.TempDir(), "config.toml")
	writeConfig(t, path, closed, 200, "down", 1)
	r, logs := startRunner(t, path)
	st := r.Status()
	if len(st.Fleets) != 1 {
		t.Fatalf("status has %d fleets, want 1", len(st.Fleets))
	}
	fs := st.Fleets[0]
	if fs.Mode != "fallback" || fs.Share != 50 || fs.FallbackSince == nil || fs.LastError == "" || fs.RedisErrors == 0 {
		t.Errorf("fleet status = %+v, want fallback at share 50 with the error", fs)
	}
	if w := workerStatus(t, st, "down_a"); w.FleetMode != "fallback" {
		t.Errorf("worker down_a fleet mode %q, want fallback", w.FleetMode)
	}
	var table bytes.Buffer
	status.WriteTable(&table, "here", st)
	if !strings.Contains(table.String(), "fleet mail: fallback: ") {
		t.Errorf("status table does not show the fallback's error:\n%s", table.String())
	}
	if !strings.Contains(logs.String(), "fleet joined") {
		t.Errorf("no 'fleet joined' line in the log:\n%s", logs)
	}
}
