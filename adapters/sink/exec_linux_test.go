//go:build linux

package sink_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
)

// bgScript returns a script that starts `sleep 30` in the background,
// holding the command's stdout and stderr, writes its pid to pidFile, then
// runs tail; readPid reads that pid once the file is there. Cleanup kills
// the child in case it is still running.
func bgScript(t *testing.T, tail string) (script, pidFile string, readPid func() int) {
	t.Helper()
	pidFile = filepath.Join(t.TempDir(), "pid")
	script = `sleep 30 & echo $! > ` + pidFile + `.tmp && mv ` + pidFile + `.tmp ` + pidFile + `; ` + tail
	pid := 0
	t.Cleanup(func() {
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL) // the test failed or left it running on purpose
		}
	})
	return script, pidFile, func() int {
		t.Helper()
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatalf("the command did not write its child's pid: %v", err)
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("pid file holds %q: %v", b, err)
		}
		return pid
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// waiting for its reaper counts as exited).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// assertDies fails t unless pid exits within a generous bound (a hang
// detector: a killed process exits at once).
func assertDies(t *testing.T, pid int) {
	t.Helper()
	// A grandchild gives no event on exit: poll its /proc entry.
	if !eventually(2*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("the command's child %d outlived Handle: the process group was not killed", pid)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	script, _, readPid := bgScript(t, "wait")
	s, err := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", script}, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Handle(context.Background(), job())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Handle took %v after a 500ms timeout, want it to return once the group is killed", took)
	}
	assertDies(t, readPid())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 500ms") {
		t.Fatalf("Handle() = %v, want a timeout error naming the 500ms", err)
	}
	if _, ok := pacer.IsThrottled(err); !ok || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("a timeout is pushback (throttled), retried: %v", err)
	}
}

func TestExecCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	script, pidFile, readPid := bgScript(t, "wait")
	s, err := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Handle(ctx, job()) }()
	if !eventually(5*time.Second, func() bool { _, err := os.Stat(pidFile); return err == nil }) {
		cancel()
		<-done
		t.Fatal("the command did not start its child within 5s")
	}

	pid := readPid()
	cancel()
	select {
	case err = <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Handle did not return within 3s of its ctx ending")
	}
	assertDies(t, pid)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "canceled") || strings.Contains(err.Error(), "after") {
		t.Fatalf("Handle() = %v, want a canceled error that names no timeout", err)
	}
}

func TestExecBackgroundChildHoldingOutput(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		exit      string
		wantErr   string // "" = success
		throttled bool
	}{
		{name: "exit 0 is success", exit: "exit 0"},
		{name: "exit 3 is an error", exit: "echo boom >&2; exit 3", wantErr: "exit 3: boom"},
		{name: "exit 75 is throttled", exit: "exit 75", wantErr: "exit 75", throttled: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			script, _, readPid := bgScript(t, tt.exit)
			s, err := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", script}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Handle(context.Background(), job())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Handle() = %v, want nil: the command exited 0, its background child holds stdout", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Handle() = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, ok := pacer.IsThrottled(err); ok != tt.throttled {
				t.Fatalf("IsThrottled(%v) = %v, want %v", err, ok, tt.throttled)
			}
			// The job is over: what it left running is killed with its
			// process group (issue 19: daemons outlived pacer run).
			assertDies(t, readPid())
		})
	}
}

// A command that leaves a background child not holding its output (a
// daemon) and exits: Handle kills the child with the process group before
// it returns, whatever the exit status (issue 19: sh -c 'sleep 300 & echo
// started; exit 0', 10 jobs, 10 sleeps left to PID 1).
func TestExecKillsWhatTheJobLeft(t *testing.T) {
	t.Parallel()
	for _, exit := range []string{"exit 0", "exit 3", "exit 75"} {
		t.Run(exit, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			script := `sleep 30 >/dev/null 2>&1 & echo $! > ` + pidFile + `; echo started; ` + exit
			s, err := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", script}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Handle(context.Background(), job())
			if (exit == "exit 0") != (err == nil) {
				t.Fatalf("Handle() = %v after %s", err, exit)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatalf("the command did not write its child's pid: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file holds %q: %v", b, err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			assertDies(t, pid)
		})
	}
}

// eventually checks cond every 10ms until it holds or timeout passes, and
// reports whether it held.
func eventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
