package sink_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
			checkOutcome(t, err, tt.wantErr, tt.throttled, tt.retry)
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

// A command that runs past its timeout is pushback: what it calls is
// drowning.
func TestExecTimeoutIsPushback(t *testing.T) {
	t.Parallel()
	s, _ := sink.NewExec(sink.ExecConfig{Command: []string{"sleep", "10"}, Timeout: 50 * time.Millisecond})
	err := s.Handle(context.Background(), job())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Handle() = %v, want a deadline error", err)
	}
	if d, ok := pacer.IsThrottled(err); !ok || d != 0 || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("IsThrottled(%v) = %v, %v; want 0, true: a timeout is pushback, retried after the worker's default", err, d, ok)
	}
}

func TestNewExecInvalid(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		c    sink.ExecConfig
		want string // the key and value the error must name
	}{
		{sink.ExecConfig{}, `command: []`},
		{sink.ExecConfig{Command: []string{""}}, `command: [""]`},
		{sink.ExecConfig{Command: []string{"pacer-no-such-program"}}, `command: ["pacer-no-such-program"]: want a program on $PATH`},
		{sink.ExecConfig{Command: []string{"./no-such-script.sh"}, Dir: "/tmp"}, `want a program that exists and is executable ("/tmp/no-such-script.sh"`},
		{sink.ExecConfig{Command: []string{"true"}, ThrottleExitCodes: []int{300}}, "throttle_exit_codes: 300"},
		{sink.ExecConfig{Command: []string{"true"}, Env: []string{"NO SUCH NAME"}}, `env: "NO SUCH NAME": want NAME (passed from pacer's environment), NAME* or KEY=VALUE entries`},
		{sink.ExecConfig{Command: []string{"true"}, Env: []string{"=x"}}, `env: "=x"`},
		{sink.ExecConfig{Command: []string{"true"}, Timeout: 5}, "timeout: 5ns"}, // a forgotten unit
		{sink.ExecConfig{Command: []string{"true"}, RetryAfter: -time.Second}, "retry_after: -1s"},
		{sink.ExecConfig{Command: []string{"true"}, RetryAfter: 6 * time.Minute}, "retry_after: 6m0s: want a duration in [0s, max_retry_after = 5m0s]"},
		{sink.ExecConfig{Command: []string{"true"}, MaxRetryAfter: -time.Second}, "max_retry_after: -1s"},
		{sink.ExecConfig{Command: []string{"true"}, MaxRetryAfter: 300}, "max_retry_after: 300ns"},
	} {
		_, err := sink.NewExec(tt.c)
		if err == nil || !strings.HasPrefix(err.Error(), "sink: exec: ") || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, pacer.ErrInvalid) {
			t.Errorf("NewExec(%+v) = %v, want a sink: exec: error wrapping pacer.ErrInvalid that names %q", tt.c, err, tt.want)
		}
	}
}

func TestExecRetryAfterLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		line  string
		cfg   sink.ExecConfig
		want  time.Duration
		noted bool // the error says the pause was capped
	}{
		{line: "retry-after: 3s", want: 3 * time.Second},
		{line: "Retry-After: 1.5s", want: 1500 * time.Millisecond},
		{line: "retry-after: 4", want: 4 * time.Second},
		{line: "retry-after: 0", want: 0},
		{line: "retry-after: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), want: 5 * time.Minute, noted: true},
		{line: "retry-after: 8760h", want: 5 * time.Minute, noted: true},
		{line: "retry-after: 31536000", want: 5 * time.Minute, noted: true},
		{line: "retry-after: 99999999999999999999", want: 5 * time.Minute, noted: true},
		{line: "retry-after: 1m", cfg: sink.ExecConfig{MaxRetryAfter: 10 * time.Second}, want: 10 * time.Second, noted: true},
		{line: "retry-after: Inf", cfg: sink.ExecConfig{RetryAfter: 2 * time.Second}, want: 2 * time.Second},
		{line: "retry-after: NaN", cfg: sink.ExecConfig{RetryAfter: 2 * time.Second}, want: 2 * time.Second},
		{line: "retry-after: 0x1p40", cfg: sink.ExecConfig{RetryAfter: 2 * time.Second}, want: 2 * time.Second},
		{line: "retry-after: 1e9", cfg: sink.ExecConfig{RetryAfter: 2 * time.Second}, want: 2 * time.Second},
		{line: "retry-after: -5s", cfg: sink.ExecConfig{RetryAfter: 2 * time.Second}, want: 2 * time.Second},
		{line: "no line", cfg: sink.ExecConfig{RetryAfter: 2 * time.Second}, want: 2 * time.Second},
	} {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			c := tt.cfg
			c.Command = []string{"sh", "-c", `echo "$0"; exit 75`, tt.line}
			s, err := sink.NewExec(c)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Handle(context.Background(), job())
			got, ok := pacer.IsThrottled(err)
			// An HTTP-date has whole seconds: allow the second it is cut to.
			if !ok || got > tt.want || got < tt.want-time.Second || (!tt.noted && got != tt.want) {
				t.Fatalf("IsThrottled(%v) = %v, %v, want %v, true", err, got, ok, tt.want)
			}
			if noted := strings.Contains(err.Error(), "capped at max_retry_after"); noted != tt.noted {
				t.Fatalf("Handle() = %v: says capped %v, want %v", err, noted, tt.noted)
			}
		})
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
			checkOutcome(t, err, tt.wantErr, tt.throttled, tt.retry)
			if p := errors.Is(err, sink.ErrPermanent); p != tt.permanent {
				t.Fatalf("errors.Is(%v, ErrPermanent) = %v, want %v", err, p, tt.permanent)
			}
			if body != `POST {"to":"a@b"}` || got.Get("X-Pacer-Job-Id") != "j1" || got.Get("X-Pacer-Job-Attempt") != "2" || got.Get("Authorization") != "Bearer x" {
				t.Fatalf("server saw %q, headers %v", body, got)
			}
		})
	}
}

// A downstream that does not answer in time, or refuses the connection, is
// pushback (a throttled outcome without a retry-after); one that ends
// because the worker cancels is not.
func TestHTTPDownOrDrowningIsPushback(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	s, _ := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, Timeout: 50 * time.Millisecond})
	err := s.Handle(context.Background(), job())
	if d, ok := pacer.IsThrottled(err); !ok || d != 0 || errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("a timeout: IsThrottled(%v) = %v, %v; want 0, true", err, d, ok)
	}

	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close() // nothing listens there now: connection refused
	s, _ = sink.NewHTTP(sink.HTTPConfig{URL: url, Timeout: time.Second})
	err = s.Handle(context.Background(), job())
	if d, ok := pacer.IsThrottled(err); !ok || d != 0 || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a refused connection: IsThrottled(%v) = %v, %v; want 0, true, wrapping ECONNREFUSED", err, d, ok)
	}

	s, _ = sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, Timeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = s.Handle(ctx, job())
	if _, ok := pacer.IsThrottled(err); ok || err == nil {
		t.Fatalf("the worker's own deadline: Handle() = %v, want an error that is not pushback", err)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {" 3 ", 3 * time.Second}, {"0", 0}, {"120", 2 * time.Minute},
		{"31536000", 8760 * time.Hour}, // a year: RetryAfter does not cap, the sinks do
		{"9223372036", 9223372036 * time.Second},
		{"9223372037", math.MaxInt64}, {"99999999999999999999999", math.MaxInt64}, // saturate, not wrap
		// Malformed: RFC 9110 allows only digits.
		{"0.5", 0}, {"-1", 0}, {"+3", 0}, {"1e3", 0}, {"0x10", 0}, {"0x1p40", 0},
		{"Inf", 0}, {"+Inf", 0}, {"NaN", 0}, {"3s", 0}, {"soon", 0}, {"3 4", 0},
		// HTTP-dates in the three formats RFC 9110 makes recipients accept.
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(7 * time.Second).Format(time.RFC850), 7 * time.Second},
		{now.Add(7 * time.Second).Format(time.ANSIC), 7 * time.Second},
		{now.Add(-7 * time.Second).Format(http.TimeFormat), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", math.MaxInt64},
	} {
		if got := sink.RetryAfter(tt.v, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestHTTPRetryAfterCapped(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		header string
		max    time.Duration
		want   time.Duration
		capped bool
	}{
		{name: "a year in seconds is capped at the default 5m", header: "31536000", want: 5 * time.Minute, capped: true},
		{name: "a date a year ahead is capped", header: time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat), want: 5 * time.Minute, capped: true},
		{name: "a pause above a set max is capped", header: "60", max: 2 * time.Second, want: 2 * time.Second, capped: true},
		{name: "a pause under the max stands", header: "60", max: 2 * time.Minute, want: time.Minute},
		{name: "Inf leaves the worker's default", header: "Inf", want: 0},
		{name: "a hex float leaves the worker's default", header: "0x1p62", want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tt.header)
				w.WriteHeader(http.StatusTooManyRequests)
			}))
			defer srv.Close()
			s, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, MaxRetryAfter: tt.max})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Handle(context.Background(), job())
			if got, ok := pacer.IsThrottled(err); !ok || got != tt.want {
				t.Fatalf("IsThrottled(%v) = %v, %v, want %v, true", err, got, ok, tt.want)
			}
			if capped := strings.Contains(err.Error(), "capped at max_retry_after"); capped != tt.capped {
				t.Fatalf("Handle() = %v: says capped %v, want %v", err, capped, tt.capped)
			}
		})
	}
}

func TestNewHTTPInvalid(t *testing.T) {
	t.Parallel()
	const u = "http://127.0.0.1:1/jobs"
	for _, tt := range []struct {
		c    sink.HTTPConfig
		want string // the key and value the error must name
	}{
		{sink.HTTPConfig{}, `url: ""`},
		{sink.HTTPConfig{URL: "ftp://x/"}, `url: "ftp://x/"`},
		{sink.HTTPConfig{URL: u, Method: "PO ST"}, `method: "PO ST"`},
		{sink.HTTPConfig{URL: u, Method: "GET\n"}, `method: "GET\n"`},
		{sink.HTTPConfig{URL: u, Method: "POST:"}, `method: "POST:"`},
		{sink.HTTPConfig{URL: u, Timeout: 5}, "timeout: 5ns"},
		{sink.HTTPConfig{URL: u, ContentType: "a\r\nX-Evil: 1"}, `content_type: "a\r\nX-Evil: 1"`},
		{sink.HTTPConfig{URL: u, Headers: map[string]string{"Bad Header": "x"}}, `headers: "Bad Header"`},
		{sink.HTTPConfig{URL: u, Headers: map[string]string{"X-Token:": "x"}}, `headers: "X-Token:"`},
		{sink.HTTPConfig{URL: u, Headers: map[string]string{"": "x"}}, `headers: ""`},
		{sink.HTTPConfig{URL: u, Headers: map[string]string{"X-Token": "a\nb"}}, `headers.X-Token: (a value of 3 bytes)`},
		{sink.HTTPConfig{URL: u, ThrottleStatus: []int{99}}, "throttle_status: 99"},
		{sink.HTTPConfig{URL: u, MaxRetryAfter: -time.Second}, "max_retry_after: -1s"},
		{sink.HTTPConfig{URL: u, MaxRetryAfter: 300}, "max_retry_after: 300ns"},
	} {
		_, err := sink.NewHTTP(tt.c)
		if err == nil || !strings.HasPrefix(err.Error(), "sink: http: ") || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, pacer.ErrInvalid) {
			t.Errorf("NewHTTP(%+v) = %v, want a sink: http: error wrapping pacer.ErrInvalid that names %q", tt.c, err, tt.want)
		}
	}
	// Valid names and values pass: token punctuation, a tab, obs-text.
	c := sink.HTTPConfig{URL: u, Method: "PATCH", Headers: map[string]string{"X-A.b_c~1": "a\tb é"}}
	if _, err := sink.NewHTTP(c); err != nil {
		t.Errorf("NewHTTP(%+v) = %v, want nil", c, err)
	}
}

func TestLog(t *testing.T) {
	t.Parallel()
	t.Run("at debug by default: no line at info", func(t *testing.T) {
		var b strings.Builder
		s, _ := sink.NewLog(sink.LogConfig{MaxPayload: 4, Logger: slog.New(slog.NewTextHandler(&b, nil))})
		if err := s.Handle(context.Background(), job()); err != nil {
			t.Fatal(err)
		}
		if b.Len() != 0 {
			t.Fatalf("log at info = %q, want nothing (the job line is at debug)", b.String())
		}
	})
	t.Run("at the level given", func(t *testing.T) {
		var b strings.Builder
		s, _ := sink.NewLog(sink.LogConfig{MaxPayload: 4, Level: "info", Logger: slog.New(slog.NewTextHandler(&b, nil))})
		if err := s.Handle(context.Background(), job()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), `payload="{\"to…"`) || !strings.Contains(b.String(), "id=j1") || !strings.Contains(b.String(), "level=INFO") {
			t.Fatalf("log line %q", b.String())
		}
	})
}

func TestNewLogInvalid(t *testing.T) {
	t.Parallel()
	if _, err := sink.NewLog(sink.LogConfig{Level: "loud"}); err == nil || !strings.Contains(err.Error(), `level: "loud": want debug, info, warn or error`) {
		t.Errorf("NewLog(level loud) = %v, want an error naming level", err)
	}
	_, err := sink.NewLog(sink.LogConfig{MaxPayload: -1})
	if err == nil || !strings.HasPrefix(err.Error(), "sink: log: ") || !strings.Contains(err.Error(), "max_payload: -1") || !errors.Is(err, pacer.ErrInvalid) {
		t.Fatalf("NewLog(max_payload -1) = %v, want a sink: log: error wrapping pacer.ErrInvalid that names max_payload = -1", err)
	}
}

// checkOutcome checks a sink's outcome: an error or not, throttled or not,
// and the retry-after it carries.
func checkOutcome(t *testing.T, err error, wantErr, throttled bool, retry time.Duration) {
	t.Helper()
	if (err != nil) != wantErr {
		t.Fatalf("Handle() = %v, want error %v", err, wantErr)
	}
	if got, ok := pacer.IsThrottled(err); ok != throttled || got != retry {
		t.Fatalf("IsThrottled(%v) = %v, %v, want %v, %v", err, got, ok, retry, throttled)
	}
}
