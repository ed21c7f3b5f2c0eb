package runner_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/runner"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// flaky is a source whose first failRuns Runs fail at once, and whose
// Connects fail after the first when connectFails is set.
type flaky struct {
	failRuns     int32
	connectFails bool
	runs         atomic.Int32
	connects     atomic.Int32
}

func (f *flaky) Connect(context.Context) (pacer.Probe, error) {
	if f.connects.Add(1) > 1 && f.connectFails {
		return nil, errors.New("stream gone for good")
	}
	return nil, nil
}

func (f *flaky) Run(ctx context.Context, _ plugin.Env) error {
	if f.runs.Add(1) <= f.failRuns {
		return errors.New("consumer deleted")
	}
	<-ctx.Done()
	return nil
}

var flakies sync.Map // worker name → *flaky

// blocked is a source that hands one job to its sink and waits for it.
type blocked struct{}

func (blocked) Connect(context.Context) (pacer.Probe, error) { return nil, nil }

func (blocked) Run(ctx context.Context, env plugin.Env) error {
	out := make(chan error, 1)
	go func() { out <- env.Handle(sink.Job{ID: "1", Type: "t", Attempt: 1, Worker: env.Worker}) }()
	<-ctx.Done()
	<-out // the source waits for its job, however long
	return nil
}

var sinkEnded sync.Map // worker name → chan error: the sink's ctx.Err() when it ended

func init() {
	plugin.RegisterSource("flaky", func(o plugin.Options) (plugin.Source, error) {
		var c struct {
			FailRuns     int32 `toml:"fail_runs"`
			ConnectFails bool  `toml:"connect_fails"`
		}
		err := o.Decode(&c)
		f := &flaky{failRuns: c.FailRuns, connectFails: c.ConnectFails}
		flakies.Store(o.WorkerName(), f)
		return f, err
	})
	plugin.RegisterSource("blocked", func(o plugin.Options) (plugin.Source, error) {
		return blocked{}, o.Decode(&struct{}{})
	})
	plugin.RegisterSink("wait", func(o plugin.Options) (sink.Sink, error) {
		ch := make(chan error, 1)
		sinkEnded.Store(o.WorkerName(), ch)
		return sink.Func(func(ctx context.Context, _ sink.Job) error {
			<-ctx.Done()
			ch <- ctx.Err()
			return ctx.Err()
		}), o.Decode(&struct{}{})
	})
}

func supervisedConfig(t *testing.T, name, source, sinkKind, top string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	cfg := fmt.Sprintf("admin = \"\"\nstatus_every = \"0s\"\n%s\n[[worker]]\nname = %q\nrate = 10\n[worker.source]\n%s\n[worker.sink]\nkind = %q\n", top, name, source, sinkKind)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFailedSourceIsRestarted(t *testing.T) {
	name := testenv.UniqueName(t)
	r, logs := startRunner(t, supervisedConfig(t, name, "kind = \"flaky\"\nfail_runs = 2", "count", ""))
	v, _ := flakies.Load(name)
	f := v.(*flaky)
	testenv.WaitFor(t, 10*time.Second, "the source's third Run", func() bool { return f.runs.Load() >= 3 })
	testenv.WaitFor(t, 10*time.Second, "the worker up again", func() bool { return r.Readiness() == nil })
	w := r.Status().Workers[0]
	if !w.Up || w.Restarts != 2 || w.Error != "" || f.connects.Load() != 3 {
		t.Errorf("after two failed Runs: up %v, restarts %d, error %q, %d Connects; want up, 2 restarts, no error, 3 Connects", w.Up, w.Restarts, w.Error, f.connects.Load())
	}
	if n := strings.Count(logs.String(), "worker down"); n != 2 {
		t.Errorf("%d \"worker down\" lines, want 2:\n%s", n, logs)
	}
}

func TestUnrecoverableSourceEndsTheRun(t *testing.T) {
	name := testenv.UniqueName(t)
	f, err := plugin.Load(supervisedConfig(t, name, "kind = \"flaky\"\nfail_runs = 1\nconnect_fails = true", "count", `recover_timeout = "1s"`))
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	r := runner.New(f, slog.New(slog.NewTextHandler(&logs, nil)), runner.RunOptions{})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Ready()
	testenv.WaitFor(t, 10*time.Second, "Readiness to say the worker is down and why", func() bool {
		err := r.Readiness()
		return err != nil && strings.Contains(err.Error(), "stream gone for good")
	})
	if w := r.Status().Workers[0]; w.Up || r.Status().Ready || w.DownSince == nil {
		t.Errorf("status while down = %+v, want down since a time, not ready", w)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "recover_timeout") || !strings.Contains(err.Error(), "stream gone for good") {
			t.Errorf("Run() = %v, want an error naming recover_timeout and the cause", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return 30s after its worker went down for good (recover_timeout 1s)\n%s", logs.String())
	}
}

func TestDrainTimeoutEndsSinkCalls(t *testing.T) {
	name := testenv.UniqueName(t)
	f, err := plugin.Load(supervisedConfig(t, name, `kind = "blocked"`, "wait", `drain_timeout = "100ms"`))
	if err != nil {
		t.Fatal(err)
	}
	r := runner.New(f, slog.New(slog.DiscardHandler), runner.RunOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Ready()
	cancel()
	v, _ := sinkEnded.Load(name)
	select {
	case err := <-v.(chan error):
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the sink's context ended with %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sink's context did not end after the drain timeout")
	}
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
}
