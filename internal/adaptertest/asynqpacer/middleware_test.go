package asynqpacer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// counting is a handler that counts its calls and returns err.
type counting struct {
	calls int
	err   error
}

func (h *counting) ProcessTask(context.Context, *asynq.Task) error { h.calls++; return h.err }

func TestMiddlewareRejectsBadInput(t *testing.T) {
	p := testenv.NewPacer(t, pacer.Config{Rate: 10})
	tests := []struct {
		name string
		p    *pacer.Pacer
		opts []asynqpacer.Option
		want string // in the error
	}{
		{"with a nil pacer", nil, nil, "pacer: nil"},
		{"with an empty route pattern", p, []asynqpacer.Option{asynqpacer.Route("", p)}, `Route pattern: ""`},
		{"with a nil route pacer", p, []asynqpacer.Option{asynqpacer.Route("email:", nil)}, `Route("email:") pacer: nil`},
		{"with a pattern routed twice", p, []asynqpacer.Option{asynqpacer.Route("a", p), asynqpacer.Route("a", p)}, "not already routed"},
		{"with a negative handler time", p, []asynqpacer.Option{asynqpacer.HandlerTime(-time.Second)}, "HandlerTime: -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw, err := asynqpacer.Middleware(tt.p, tt.opts...)
			if err == nil || mw != nil {
				t.Fatalf("Middleware = %v, %v; want nil and an error", mw != nil, err)
			}
			if !errors.Is(err, pacer.ErrInvalid) || !strings.HasPrefix(err.Error(), "asynqpacer: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Middleware error = %q; want it to wrap pacer.ErrInvalid, start with \"asynqpacer: \" and contain %q", err, tt.want)
			}
		})
	}
}

func TestMiddlewareReportsOutcomes(t *testing.T) {
	throttled := pacer.Throttle(time.Hour, errors.New("429 Too Many Requests"))
	tests := []struct {
		name                          string
		err                           error
		succeeded, failed, throttledN uint64
		pauses                        uint64
	}{
		{"a nil error is a success", nil, 1, 0, 0, 0},
		{"a plain error is a failure", errors.New("boom"), 0, 1, 0, 0},
		{"a wrapped Throttled is pushback", errors.Join(errors.New("send"), throttled), 0, 0, 1, 1},
		{"a refused connection is pushback", fmt.Errorf("send: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), 0, 0, 1, 0},
		{"a timeout is pushback", fmt.Errorf("send: %w", context.DeadlineExceeded), 0, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testenv.NewPacer(t, pacer.Config{Rate: 1e6})
			h := &counting{err: tt.err}
			got := mustMiddleware(p)(h).ProcessTask(context.Background(), asynq.NewTask("t", nil))
			if !errors.Is(got, tt.err) || h.calls != 1 {
				t.Fatalf("ProcessTask = %v with %d calls, want %v (the handler's error) and 1 call", got, h.calls, tt.err)
			}
			if asynqpacer.IsFailure(got) != (tt.failed == 1) {
				t.Fatalf("IsFailure(%v) = %v, want %v", got, !(tt.failed == 1), tt.failed == 1)
			}
			s := p.Stats()
			if s.Succeeded != tt.succeeded || s.Failed != tt.failed || s.Throttled != tt.throttledN || s.Pauses != tt.pauses || s.InFlight != 0 {
				t.Fatalf("Stats = succeeded %d failed %d throttled %d pauses %d in flight %d; want %d %d %d %d 0",
					s.Succeeded, s.Failed, s.Throttled, s.Pauses, s.InFlight, tt.succeeded, tt.failed, tt.throttledN, tt.pauses)
			}
		})
	}
}

func TestMiddlewareReleasesThePermitWhenTheHandlerPanics(t *testing.T) {
	p := testenv.NewPacer(t, pacer.Config{Rate: 1e6, MaxInFlight: 1})
	h := mustMiddleware(p)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { panic("handler bug") }))
	func() {
		defer func() {
			if r := recover(); r != "handler bug" {
				t.Fatalf("recover() = %v, want the handler's panic", r)
			}
		}()
		_ = h.ProcessTask(context.Background(), asynq.NewTask("t", nil))
	}()
	if s := p.Stats(); s.InFlight != 0 || s.Failed != 1 {
		t.Fatalf("after a panic: InFlight = %d, Failed = %d; want 0, 1", s.InFlight, s.Failed)
	}
}

func TestRouteChoosesThePacerByTaskType(t *testing.T) {
	def := testenv.NewPacer(t, pacer.Config{Rate: 1e6})
	email := testenv.NewPacer(t, pacer.Config{Rate: 1e6})
	welcome := testenv.NewPacer(t, pacer.Config{Rate: 1e6})
	mw, err := asynqpacer.Middleware(def, asynqpacer.Route("email:", email), asynqpacer.Route("email:welcome", welcome))
	if err != nil {
		t.Fatal(err)
	}
	h := mw(&counting{})
	for _, typ := range []string{"email:welcome", "email:welcome:v2", "email:reset", "sms:send", "emai"} {
		if err := h.ProcessTask(context.Background(), asynq.NewTask(typ, nil)); err != nil {
			t.Fatalf("ProcessTask(%q) = %v", typ, err)
		}
	}
	for _, c := range []struct {
		name string
		p    *pacer.Pacer
		want uint64
	}{{"default", def, 2}, {"email:", email, 1}, {"email:welcome", welcome, 2}} {
		if got := c.p.Stats().Dispatched; got != c.want {
			t.Errorf("pacer %s dispatched %d, want %d", c.name, got, c.want)
		}
	}
}

func TestMiddlewareGivesBackATaskThatCannotMakeItsDeadline(t *testing.T) {
	t.Run("when the estimated wait passes the deadline, at once", func(t *testing.T) {
		p := testenv.NewPacer(t, pacer.Config{Rate: 1})
		h := &counting{}
		mw := mustMiddleware(p)(h)
		if err := mw.ProcessTask(context.Background(), asynq.NewTask("t", nil)); err != nil {
			t.Fatalf("first task: %v", err) // takes the one token
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := mw.ProcessTask(ctx, asynq.NewTask("t", nil))
		var rl *asynqpacer.RateLimitError
		if !errors.As(err, &rl) || !errors.Is(err, asynqpacer.ErrRateLimited) {
			t.Fatalf("ProcessTask = %v, want a *RateLimitError", err)
		}
		if rl.RetryAfter <= 300*time.Millisecond || rl.RetryAfter > time.Second {
			t.Errorf("RetryAfter = %v, want the estimated wait, in (300ms, 1s]", rl.RetryAfter)
		}
		if ctx.Err() != nil {
			t.Errorf("the task's context ended (%v): the middleware waited into the deadline", ctx.Err())
		}
		if h.calls != 1 || p.Stats().Dispatched != 1 {
			t.Errorf("handler calls = %d, dispatched = %d; want 1, 1", h.calls, p.Stats().Dispatched)
		}
	})
	t.Run("when a pause starts during the wait, before the deadline", func(t *testing.T) {
		p := testenv.NewPacer(t, pacer.Config{Rate: 5})
		pm, err := p.Acquire(context.Background(), 1) // the next permit is due in 200ms
		if err != nil {
			t.Fatal(err)
		}
		// A deadline far beyond the permit's 200ms, well within the
		// minute's pause: a loaded machine may hold the goroutine up.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res := make(chan error, 1)
		h := &counting{}
		go func() { res <- mustMiddleware(p)(h).ProcessTask(ctx, asynq.NewTask("t", nil)) }()
		// With the task waiting, a new Acquire would wait for two permits.
		testenv.WaitFor(t, 5*time.Second, "the task to wait for its permit", func() bool { return p.EstimateWait(1) > 250*time.Millisecond })
		pm.Done(pacer.Throttle(time.Minute, nil)) // pushback: pause a minute
		err = <-res
		if !errors.Is(err, asynqpacer.ErrRateLimited) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ProcessTask = %v, want a *RateLimitError wrapping context.DeadlineExceeded", err)
		}
		if ctx.Err() != nil {
			t.Errorf("the task's context ended (%v) before the middleware gave up", ctx.Err())
		}
		if h.calls != 0 {
			t.Errorf("handler calls = %d, want 0", h.calls)
		}
	})
	t.Run("when the pacer is closed", func(t *testing.T) {
		p := testenv.NewPacer(t, pacer.Config{Rate: 1})
		mw := mustMiddleware(p)(&counting{})
		_ = mw.ProcessTask(context.Background(), asynq.NewTask("t", nil)) // takes the one token
		p.Close()
		err := mw.ProcessTask(context.Background(), asynq.NewTask("t", nil))
		if !errors.Is(err, asynqpacer.ErrRateLimited) || !errors.Is(err, pacer.ErrClosed) || asynqpacer.IsFailure(err) {
			t.Fatalf("ProcessTask = %v, want a *RateLimitError wrapping pacer.ErrClosed, not a failure", err)
		}
	})
	t.Run("when the task's context is cancelled", func(t *testing.T) {
		p := testenv.NewPacer(t, pacer.Config{Rate: 1})
		mw := mustMiddleware(p)(&counting{})
		_ = mw.ProcessTask(context.Background(), asynq.NewTask("t", nil))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := mw.ProcessTask(ctx, asynq.NewTask("t", nil)); !errors.Is(err, context.Canceled) {
			t.Fatalf("ProcessTask = %v, want context.Canceled", err)
		}
	})
}

func TestIsFailureAndRetryDelay(t *testing.T) {
	task := asynq.NewTask("t", nil)
	tests := []struct {
		name      string
		err       error
		isFailure bool
		delay     time.Duration // -1: asynq's default
	}{
		{"nil", nil, false, -1},
		{"a plain error", errors.New("boom"), true, -1},
		{"a Throttled with retry-after", pacer.Throttle(3*time.Second, nil), false, 3 * time.Second},
		{"a wrapped Throttled without retry-after", errors.Join(errors.New("x"), pacer.Throttle(0, nil)), false, pacer.DefaultRetryAfter},
		{"a RateLimitError", &asynqpacer.RateLimitError{Type: "t", RetryAfter: 7 * time.Second}, false, 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := asynqpacer.IsFailure(tt.err); got != tt.isFailure {
				t.Errorf("IsFailure(%v) = %v, want %v", tt.err, got, tt.isFailure)
			}
			if tt.err == nil {
				return
			}
			got := asynqpacer.RetryDelay(0, tt.err, task)
			if tt.delay >= 0 && got != tt.delay {
				t.Errorf("RetryDelay(0, %v) = %v, want %v", tt.err, got, tt.delay)
			}
			if tt.delay < 0 && got < 15*time.Second { // asynq's default: n^4 + 15 s + jitter
				t.Errorf("RetryDelay(0, %v) = %v, want asynq's default (≥ 15s)", tt.err, got)
			}
		})
	}
}

// A throttled outcome with no retry-after, and a refused connection, are
// retried after the pacer's own Config.DefaultRetryAfter (default_retry_after
// in config.toml), not asynqpacer's 1s: RetryDelay gives what the error
// carries. A retry-after the downstream named is kept.
func TestRetryDelayIsThePacersDefault(t *testing.T) {
	refused := fmt.Errorf("send: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	for _, tt := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"a Throttled with no retry-after", pacer.Throttle(0, errors.New("503")), 7 * time.Second},
		{"a refused connection", refused, 7 * time.Second},
		{"a Throttled with a retry-after", pacer.Throttle(2*time.Second, errors.New("429")), 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testenv.NewPacer(t, pacer.Config{Rate: 1e6, DefaultRetryAfter: 7 * time.Second})
			task := asynq.NewTask("t", nil)
			got := mustMiddleware(p)(&counting{err: tt.err}).ProcessTask(context.Background(), task)
			if d := asynqpacer.RetryDelay(0, got, task); d != tt.want || asynqpacer.IsFailure(got) || !errors.Is(got, tt.err) {
				t.Errorf("RetryDelay = %v, IsFailure %v, wraps the handler's error %v; want %v, false, true", d, asynqpacer.IsFailure(got), errors.Is(got, tt.err), tt.want)
			}
		})
	}
}
