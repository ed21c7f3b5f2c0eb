package natspacer

import (
	"log/slog"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// ErrInvalid is wrapped by every error about a bad argument or option, so
// callers can test for it with errors.Is. It wraps pacer.ErrInvalid in
// turn: errors.Is(err, pacer.ErrInvalid) holds for these errors too.
var ErrInvalid error = invalidError{}

// invalidError is ErrInvalid: it says "invalid argument" and unwraps to
// pacer.ErrInvalid.
type invalidError struct{}

func (invalidError) Error() string { return "invalid argument" }
func (invalidError) Unwrap() error { return pacer.ErrInvalid }

func invalid(field string, v any, allowed string) error {
	return &pacer.FieldError{Pkg: "natspacer", Field: field, Value: v, Want: allowed, Err: ErrInvalid}
}

// Option configures Consume or Subscribe. Options that apply to only one of
// them say so, and the other rejects them with an error.
type Option func(*config) error

type config struct {
	concurrency   int
	maxInFlight   int
	maxBatch      int
	linger        time.Duration
	pollWait      time.Duration
	progressEvery time.Duration
	retryAfter    time.Duration
	backoff       func(delivered uint64) time.Duration
	probe         *Probe
	buffer        int
	logger        *slog.Logger

	progressHook func(done func() bool) // tests only: runs before each InProgress, with the job's lock held

	consumeOnly, subscribeOnly []string // names of the options given
}

func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return err
		}
	}
	return nil
}

// Concurrency sets how many handlers run at once. The default value is 16.
func Concurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("Concurrency", n, "≥ 1")
		}
		c.concurrency = n
		return nil
	}
}

// MaxInFlight caps, for Consume, the messages this consumption holds at
// once: permits waiting in a Fetch plus messages received and not yet
// finished. It is further capped by the consumer's MaxAckPending. Messages
// beyond Concurrency wait for a handler (with InProgress sent for them like
// for running ones), so raise it above Concurrency only for fast handlers.
// The default value is Concurrency. Consume only.
func MaxInFlight(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("MaxInFlight", n, "≥ 1")
		}
		c.maxInFlight = n
		c.consumeOnly = append(c.consumeOnly, "MaxInFlight")
		return nil
	}
}

// MaxBatch caps the messages asked for in one Fetch. It is further capped
// by the in-flight cap and by the consumer's MaxRequestBatch. The default
// value is 256. Consume only.
func MaxBatch(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("MaxBatch", n, "≥ 1")
		}
		c.maxBatch = n
		c.consumeOnly = append(c.consumeOnly, "MaxBatch")
		return nil
	}
}

// BatchLinger is how long Consume may hold the first permit of a Fetch
// while the next ones fall due, so that at high rates one round trip
// fetches several messages. It holds permits, never messages, and only
// while more are due within it: at low rates every permit is fetched at
// once. Zero fetches each bunch of permits as soon as one is not due at
// once. The default value is 2ms. Consume only.
func BatchLinger(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > time.Second {
			return invalid("BatchLinger", d, "in [0, 1s]")
		}
		c.linger = d
		c.consumeOnly = append(c.consumeOnly, "BatchLinger")
		return nil
	}
}

// PollWait is how long one Fetch waits on the server for messages that are
// not there yet; it also bounds how long Stop waits for the fetches in
// flight. The default value is 1s, lowered to the consumer's
// MaxRequestExpires when that is shorter; a PollWait given above
// MaxRequestExpires makes Consume return an error wrapping ErrInvalid.
// Consume only.
func PollWait(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond {
			return invalid("PollWait", d, "≥ 10ms")
		}
		c.pollWait = d
		c.consumeOnly = append(c.consumeOnly, "PollWait")
		return nil
	}
}

// ProgressEvery is how long a message may be held (waiting for a handler or
// running) before InProgress resets its AckWait, and the interval between
// further InProgress signals. It must be less than the consumer's AckWait.
// The default value is half the AckWait. Consume only.
func ProgressEvery(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("ProgressEvery", d, "> 0")
		}
		c.progressEvery = d
		c.consumeOnly = append(c.consumeOnly, "ProgressEvery")
		return nil
	}
}

// RetryAfter is the NakWithDelay delay for a throttled outcome that names
// no retry-after. The default value is 1s, the pacer's own default. Consume
// only.
func RetryAfter(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("RetryAfter", d, "> 0")
		}
		c.retryAfter = d
		c.consumeOnly = append(c.consumeOnly, "RetryAfter")
		return nil
	}
}

// Backoff sets the NakWithDelay delay after a handler error, given how many
// times the message has been delivered (1 the first time). The default
// value is DefaultBackoff. Consume only.
func Backoff(f func(delivered uint64) time.Duration) Option {
	return func(c *config) error {
		if f == nil {
			return invalid("Backoff", "nil", "a function")
		}
		c.backoff = f
		c.consumeOnly = append(c.consumeOnly, "Backoff")
		return nil
	}
}

// DefaultBackoff is the default Backoff: 1s after the first delivery,
// doubling with each further delivery, at most 1 minute.
func DefaultBackoff(delivered uint64) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	if delivered > 7 {
		return time.Minute
	}
	return min(time.Second<<(delivered-1), time.Minute)
}

// WithProbe makes Consume feed probe (Probe.Observe) the metadata of the
// last message of each Fetch: the newest NumPending, free with the message
// (Consume parses no other message's metadata, which would cost more than
// a raw consumer spends on the whole message). So probe, as the pacer's
// Config.Probe, rarely needs an Info call. The default value is nil: no
// probe is fed. Consume only.
func WithProbe(probe *Probe) Option {
	return func(c *config) error {
		if probe == nil {
			return invalid("WithProbe", "nil", "a *Probe from NewProbe")
		}
		c.probe = probe
		c.consumeOnly = append(c.consumeOnly, "WithProbe")
		return nil
	}
}

// Buffer sets how many messages a core subscription holds while they wait
// for the pace; a message that arrives when the buffer is full is dropped
// and counted. The default value is 1024. Subscribe only.
func Buffer(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("Buffer", n, "≥ 1")
		}
		c.buffer = n
		c.subscribeOnly = append(c.subscribeOnly, "Buffer")
		return nil
	}
}

// Logger sets where problems are logged: drops, failed acks, fetch errors
// and reconnects. The default value is slog.Default().
func Logger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("Logger", "nil", "a *slog.Logger")
		}
		c.logger = l
		return nil
	}
}
