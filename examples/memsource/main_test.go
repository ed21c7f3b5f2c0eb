package main_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// build builds memsource into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "memsource")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer safe for a process's stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The binary built on package worker runs the source it registers: the
// shipped config.toml checks, and every job of the in-memory queue
// reaches the sink exactly once, the one that failed after its retry;
// SIGTERM then stops it cleanly.
func TestMemsourceEndToEnd(t *testing.T) {
	bin := build(t)

	out, err := exec.Command(bin, "check", "-c", "config.toml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "memory (memory → log") {
		t.Fatalf("memsource check -c config.toml = %v\n%s\nwant ok with the worker memory (memory → log)", err, out)
	}

	const jobs = 40
	var (
		mu       sync.Mutex
		ok       = map[string]int{} // job id → successful deliveries
		failed   bool
		allDone  = make(chan struct{})
		attempts = map[string]string{} // job id → X-Pacer-Job-Attempt of its success
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("X-Pacer-Job-Id")
		if id == "7" && !failed { // the first delivery of job 7 fails: it goes back to the queue
			failed = true
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		ok[id]++
		attempts[id] = r.Header.Get("X-Pacer-Job-Attempt")
		if len(ok) == jobs && ok[id] == 1 {
			close(allDone)
		}
	}))
	defer srv.Close()

	shipped, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"rate = 20", "rate = 400", "base = 10", "base = 400", "jobs = 200", "jobs = 40",
		"kind = \"log\"", "kind = \"http\"\nurl = \""+srv.URL+"\"",
	).Replace(string(shipped))
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(bin, "run", "-c", path, "--admin", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	select {
	case <-allDone:
	case err := <-exited:
		t.Fatalf("memsource run exited before the %d jobs were done: %v\n%s", jobs, err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the sink did not see %d jobs in 30s\n%s", jobs, logs.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("memsource run after SIGTERM: %v, want exit 0\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("memsource run did not stop 30s after SIGTERM\n%s", logs.String())
	}

	mu.Lock()
	defer mu.Unlock()
	for id, n := range ok {
		if n != 1 {
			t.Errorf("job %s reached the sink %d times, want once", id, n)
		}
	}
	if got := attempts["7"]; got != "2" {
		t.Errorf("job 7 succeeded at attempt %q, want 2 (its first delivery failed)", got)
	}
	if want := "dispatched=41 done=40 failed=1"; !strings.Contains(logs.String(), want) {
		t.Errorf("the log does not say %s (40 jobs, one of them failed once):\n%s", want, logs.String())
	}
}
