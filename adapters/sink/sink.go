package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Job is one job a source hands a sink.
type Job struct {
	ID      string // the source's id: Asynq task id, JetStream Nats-Msg-Id or stream:created:sequence, NATS reply or a counter
	Type    string // the Asynq task type or the NATS subject
	Attempt int    // 1 on the first delivery
	Payload []byte
	Worker  string // the worker's name in config.toml
}

// Sink handles jobs. Handle runs one job and returns its outcome: nil,
// an error wrapping *pacer.Throttled for pushback, or another error. It
// must return when ctx ends, and be safe for concurrent use.
type Sink interface {
	Handle(ctx context.Context, j Job) error
}

// Func adapts a function to the Sink interface.
type Func func(ctx context.Context, j Job) error

// Handle calls f(ctx, j).
func (f Func) Handle(ctx context.Context, j Job) error { return f(ctx, j) }

// ErrPermanent is wrapped by outcomes that retrying cannot fix, such as an
// HTTP 400: sources drop such a job (Asynq: SkipRetry; JetStream: Term)
// instead of retrying it.
var ErrPermanent = errors.New("permanent failure")

func permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// invalid returns the error for a bad setting, a *pacer.FieldError: it
// names the sink kind, the key, the value and what is allowed ("sink: exec:
// timeout: -1s: want …"), and wraps pacer.ErrInvalid.
func invalid(kind, key string, v any, want string) error {
	return &pacer.FieldError{Pkg: "sink: " + kind, Field: key, Value: v, Want: want}
}

// defaultMaxRetryAfter is the default of the sinks' MaxRetryAfter.
const defaultMaxRetryAfter = 5 * time.Minute

// capRetryAfter returns the pause d, asked for by the retry-after value v,
// capped at limit, and a note for the outcome's error when it was capped.
func capRetryAfter(d, limit time.Duration, v string) (time.Duration, string) {
	if d <= limit {
		return d, ""
	}
	return limit, fmt.Sprintf(" (retry-after %q capped at max_retry_after %v)", v, limit)
}
