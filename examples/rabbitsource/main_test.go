package main_test

import (
	"bytes"
	"context"
	"fmt"
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

	amqp "github.com/rabbitmq/amqp091-go"
)

const defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// rabbit connects to RabbitMQ at $RABBITMQ_URL (or 127.0.0.1:5672 as
// guest) and returns the URL and a channel. Without a broker the test is
// skipped, or fails under CI=true.
func rabbit(t *testing.T) (string, *amqp.Channel) {
	t.Helper()
	url := os.Getenv("RABBITMQ_URL")
	if url == "" {
		url = defaultURL
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no RabbitMQ at %s: %v", url, err)
		}
		t.Skipf("no RabbitMQ at %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return url, ch
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

// Jobs published to a RabbitMQ queue reach the sink of the binary built
// on package worker exactly once each, a failed one after its requeue;
// SIGTERM stops it cleanly and leaves the queue empty.
func TestRabbitsourceEndToEnd(t *testing.T) {
	url, ch := rabbit(t)
	queue := fmt.Sprintf("pacer-test-%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(queue, false, false, false) })
	const jobs = 30
	for i := 1; i <= jobs; i++ {
		err := ch.PublishWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{MessageId: strconv.Itoa(i), Type: "test", Body: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		if err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu       sync.Mutex
		ok       = map[string]int{} // job id → successful deliveries
		attempts = map[string]string{}
		failed   bool
		allDone  = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("X-Pacer-Job-Id")
		if id == "7" && !failed { // the first delivery of job 7 fails: it is requeued
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

	bin := filepath.Join(t.TempDir(), "rabbitsource")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	shipped, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"rate = 20", "rate = 400", "base = 5", "base = 400",
		defaultURL, url, `queue = "pacer-example"`, fmt.Sprintf("queue = %q", queue),
		"kind = \"log\"", "kind = \"http\"\nurl = \""+srv.URL+"\"", "max_payload = 80\n", "",
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
		t.Fatalf("rabbitsource run exited before the %d jobs were done: %v\n%s", jobs, err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the sink did not see %d jobs in 30s\n%s", jobs, logs.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("rabbitsource run after SIGTERM: %v, want exit 0\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("rabbitsource run did not stop 30s after SIGTERM\n%s", logs.String())
	}

	mu.Lock()
	defer mu.Unlock()
	for id, n := range ok {
		if n != 1 {
			t.Errorf("job %s reached the sink %d times, want once", id, n)
		}
	}
	if got := attempts["7"]; got != "2" {
		t.Errorf("job 7 succeeded at attempt %q, want 2 (redelivered after its failure)", got)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 0 || q.Consumers != 0 {
		t.Errorf("queue after the run: %d messages, %d consumers; want 0, 0 (every job acked)", q.Messages, q.Consumers)
	}
}
