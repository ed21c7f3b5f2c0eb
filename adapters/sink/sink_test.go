package sink_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
)

func job() sink.Job {
	return sink.Job{ID: "j1", Type: "email:send", Attempt: 2, Payload: []byte(`{"to":"a@b"}`), Worker: "w"}
}

func TestExec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	tests := []struct {
		name      string
		script    string
		wantErr   bool
		throttled bool
		retry     time.Duration
	}{
		{name: "exit 0 is success, payload on stdin, metadata in env",
			script: `{ cat; echo " $PACER_JOB_ID $PACER_JOB_TYPE $PACER_JOB_ATTEMPT $PACER_WORKER"; } > ` + out},
		{name: "exit 1 is an error", script: "echo boom >&2; exit 1", wantErr: true},
		{name: "exit 75 is throttled", script: "exit 75", wantErr: true, throttled: true},
		{name: "exit 75 with a retry-after line", script: "echo 'retry-after: 3s'; exit 75", wantErr: true, throttled: true, retry: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", tt.script}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Handle(context.Background(), job())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle() = %v, want error %v", err, tt.wantErr)
			}
			retry, ok := pacer.IsThrottled(err)
			if ok != tt.throttled || retry != tt.retry {
				t.Fatalf("IsThrottled(%v) = %v, %v, want %v, %v", err, retry, ok, tt.retry, tt.throttled)
			}
		})
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"to":"a@b"} j1 email:send 2 w`+"\n"; got != want {
		t.Errorf("command saw %q, want %q", got, want)
	}
}

func TestExecStderrInError(t *testing.T) {
	t.Parallel()
	s, _ := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", "echo no such user >&2; exit 3"}})
	err := s.Handle(context.Background(), job())
	if err == nil || !strings.Contains(err.Error(), "exit 3: no such user") {
		t.Fatalf("Handle() = %v, want exit 3 with the stderr", err)
	}
}

func TestExecTimeout(t *testing.T) {
	t.Parallel()
	s, _ := sink.NewExec(sink.ExecConfig{Command: []string{"sleep", "10"}, Timeout: 50 * time.Millisecond})
	err := s.Handle(context.Background(), job())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Handle() = %v, want a deadline error", err)
	}
	if _, ok := pacer.IsThrottled(err); ok {
		t.Fatalf("a timeout is not throttled: %v", err)
	}
}

func TestNewExecInvalid(t *testing.T) {
	t.Parallel()
	for _, c := range []sink.ExecConfig{
		{},
		{Command: []string{"x"}, ThrottleExitCodes: []int{300}},
		{Command: []string{"x"}, Env: []string{"NOEQUALS"}},
		{Command: []string{"x"}, Timeout: 5}, // 5ns: a forgotten unit
	} {
		if _, err := sink.NewExec(c); err == nil || !strings.HasPrefix(err.Error(), "sink: exec: ") {
			t.Errorf("NewExec(%+v) = %v, want a sink: exec: error", c, err)
		}
	}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		header    string
		wantErr   bool
		throttled bool
		permanent bool
		retry     time.Duration
	}{
		{name: "200 is success", status: 200},
		{name: "429 with Retry-After seconds is throttled", status: 429, header: "2", wantErr: true, throttled: true, retry: 2 * time.Second},
		{name: "503 without Retry-After is throttled", status: 503, wantErr: true, throttled: true},
		{name: "500 is an error, retried", status: 500, wantErr: true},
		{name: "400 is permanent", status: 400, wantErr: true, permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got http.Header
			var body string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Clone()
				b := new(strings.Builder)
				_, _ = fmt.Fprint(b, r.Method, " ")
				buf := make([]byte, 100)
				n, _ := r.Body.Read(buf)
				body = b.String() + string(buf[:n])
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			s, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, Headers: map[string]string{"Authorization": "Bearer x"}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Handle(context.Background(), job())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Handle() = %v, want error %v", err, tt.wantErr)
			}
			retry, ok := pacer.IsThrottled(err)
			if ok != tt.throttled || retry != tt.retry {
				t.Fatalf("IsThrottled(%v) = %v, %v, want %v, %v", err, retry, ok, tt.retry, tt.throttled)
			}
			if p := errors.Is(err, sink.ErrPermanent); p != tt.permanent {
				t.Fatalf("errors.Is(%v, ErrPermanent) = %v, want %v", err, p, tt.permanent)
			}
			if body != `POST {"to":"a@b"}` || got.Get("X-Pacer-Job-Id") != "j1" || got.Get("X-Pacer-Job-Attempt") != "2" || got.Get("Authorization") != "Bearer x" {
				t.Fatalf("server saw %q, headers %v", body, got)
			}
		})
	}
}

func TestHTTPTimeoutIsError(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	s, _ := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, Timeout: 50 * time.Millisecond})
	err := s.Handle(context.Background(), job())
	if err == nil || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("Handle() = %v, want a retryable error", err)
	}
	if _, ok := pacer.IsThrottled(err); ok {
		t.Fatalf("a timeout is not throttled: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"0.5", 500 * time.Millisecond}, {"-1", 0}, {"soon", 0},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
	} {
		if got := sink.RetryAfter(tt.v, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestLog(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	s, _ := sink.NewLog(sink.LogConfig{MaxPayload: 4, Logger: slog.New(slog.NewTextHandler(&b, nil))})
	if err := s.Handle(context.Background(), job()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `payload="{\"to…"`) || !strings.Contains(b.String(), "id=j1") {
		t.Fatalf("log line %q", b.String())
	}
}
