package natspacer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// invalid is the error for a bad argument or option: a *pacer.FieldError
// that wraps pacer.ErrInvalid, as the other packages' errors do.
func invalid(field string, v any, allowed string) error {
	return &pacer.FieldError{Pkg: "natspacer", Field: field, Value: v, Want: allowed}
}

// Defaults of the options, for Consume and Subscribe.
const (
	DefaultConcurrency = 16                    // Concurrency
	DefaultMaxInFlight = 1000                  // MaxInFlight: the server's default MaxAckPending
	DefaultMaxBatch    = 256                   // MaxBatch
	DefaultBatchLinger = 2 * time.Millisecond  // BatchLinger
	DefaultPollWait    = time.Second           // PollWait
	DefaultBuffer      = 1024                  // Buffer
	serverAckWait      = 30 * time.Second      // a consumer's AckWait when its config says 0
	serverMaxAckPend   = 1000                  // a consumer's MaxAckPending when its config says 0
	minPollWait        = 10 * time.Millisecond // the shortest PollWait
)

// ConsumeOption configures Consume. The options that configure only
// Consume return a ConsumeOption, so passing one to Subscribe does not
// compile; those that configure both return an Option.
type ConsumeOption interface {
	configureConsume(*consumeConfig) error
}

// SubscribeOption configures Subscribe. The options that configure only
// Subscribe return a SubscribeOption; those that configure both return an
// Option.
type SubscribeOption interface {
	configureSubscribe(*subscribeConfig) error
}

// Option configures Consume and Subscribe alike: Concurrency, Logger and
// WithClock.
type Option interface {
	ConsumeOption
	SubscribeOption
}

// common holds the settings that Consume and Subscribe share.
type common struct {
	concurrency int
	logger      *slog.Logger
	clock       pacer.Clock
}

func defaultCommon() common {
	return common{concurrency: DefaultConcurrency, logger: slog.Default(), clock: pacer.SystemClock()}
}

// consumeConfig holds Consume's settings, defaults first: Consume fills
// it with the defaults, applies the options in order, and checks the
// settings against the consumer's own (AckWait, MaxRequestExpires) last.
type consumeConfig struct {
	common
	maxInFlight   int
	maxBatch      int
	linger        time.Duration
	pollWait      time.Duration
	pollWaitSet   bool // PollWait given: not lowered to MaxRequestExpires, an error past it
	progressEvery time.Duration
	retryAfter    time.Duration
	backoff       func(delivered uint64) time.Duration
	probe         *Probe

	progressHook func(done func() bool) // tests only: runs before each InProgress, with the job's lock held
	outcomeHook  func()                 // tests only: runs after a handler returns, before its outcome is sent
}

func defaultConsume() consumeConfig {
	return consumeConfig{common: defaultCommon(), maxInFlight: DefaultMaxInFlight, maxBatch: DefaultMaxBatch,
		linger: DefaultBatchLinger, pollWait: DefaultPollWait, backoff: DefaultBackoff}
}

// subscribeConfig holds Subscribe's settings.
type subscribeConfig struct {
	common
	buffer int
}

func defaultSubscribe() subscribeConfig {
	return subscribeConfig{common: defaultCommon(), buffer: DefaultBuffer}
}

// commonOption is an Option: it sets what Consume and Subscribe share.
type commonOption func(*common) error

func (o commonOption) configureConsume(c *consumeConfig) error     { return o(&c.common) }
func (o commonOption) configureSubscribe(c *subscribeConfig) error { return o(&c.common) }

// consumeOption is a ConsumeOption only.
type consumeOption func(*consumeConfig) error

func (o consumeOption) configureConsume(c *consumeConfig) error { return o(c) }

// subscribeOption is a SubscribeOption only.
type subscribeOption func(*subscribeConfig) error

func (o subscribeOption) configureSubscribe(c *subscribeConfig) error { return o(c) }

// Concurrency sets how many handlers run at once. The default value is
// DefaultConcurrency (16).
func Concurrency(n int) Option {
	return commonOption(func(c *common) error {
		if n < 1 {
			return invalid("Concurrency", n, "≥ 1")
		}
		c.concurrency = n
		return nil
	})
}

// Logger sets where problems are logged: drops, failed acks, fetch errors
// and reconnects. The default value is slog.Default().
func Logger(l *slog.Logger) Option {
	return commonOption(func(c *common) error {
		if l == nil {
			return invalid("Logger", "nil", "a *slog.Logger")
		}
		c.logger = l
		return nil
	})
}

// WithClock sets the clock the consumption or subscription reads time
// from and makes its timers with: the batch linger, the fetch backoff,
// InProgress, the window's round-trip measure, the drop log. Give the
// Pacer's own Clock here when it is not the system clock. The default
// value is pacer.SystemClock().
func WithClock(clock pacer.Clock) Option {
	return commonOption(func(c *common) error {
		if clock == nil {
			return invalid("WithClock", "nil", "a pacer.Clock (pacer.SystemClock() for the system clock)")
		}
		c.clock = clock
		return nil
	})
}

// MaxInFlight is an upper bound on the messages Consume holds at once:
// permits gathered or asked for by a Fetch plus messages received and not
// yet finished. Within it Consume sizes its own window of messages ahead
// of the handlers (see Consume); MaxInFlight only caps it, and need not be
// tuned. It is further capped by the consumer's MaxAckPending. The default
// value is DefaultMaxInFlight (1000, the server's default MaxAckPending).
func MaxInFlight(n int) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if n < 1 {
			return invalid("MaxInFlight", n, "≥ 1")
		}
		c.maxInFlight = n
		return nil
	})
}

// MaxBatch is an upper bound on the messages asked for in one Fetch. It is
// further capped by the in-flight bound and by the consumer's
// MaxRequestBatch. The default value is DefaultMaxBatch (256).
func MaxBatch(n int) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if n < 1 {
			return invalid("MaxBatch", n, "≥ 1")
		}
		c.maxBatch = n
		return nil
	})
}

// BatchLinger is how long Consume may hold the first permit of a Fetch
// while the next ones fall due, so that at high rates one round trip
// fetches several messages. It holds permits, never messages, and only
// while more are due within it: at low rates every permit is fetched at
// once. Zero fetches each bunch of permits as soon as one is not due at
// once. The default value is DefaultBatchLinger (2ms).
func BatchLinger(d time.Duration) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if d < 0 || d > time.Second {
			return invalid("BatchLinger", d, "in [0, 1s]")
		}
		c.linger = d
		return nil
	})
}

// PollWait is how long one Fetch waits on the server for messages that are
// not there yet; it also bounds how long Drain waits for the fetches in
// flight. The default value is DefaultPollWait (1s), lowered to the
// consumer's MaxRequestExpires when that is shorter; a PollWait given
// above MaxRequestExpires makes Consume return an error wrapping
// ErrInvalid.
func PollWait(d time.Duration) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if d < minPollWait {
			return invalid("PollWait", d, fmt.Sprintf("≥ %v", minPollWait))
		}
		c.pollWait, c.pollWaitSet = d, true
		return nil
	})
}

// ProgressEvery is how long a message may be held (waiting for a handler or
// running) before InProgress resets its AckWait, and the interval between
// further InProgress signals. It must be less than the consumer's AckWait.
// The default value is half the AckWait.
func ProgressEvery(d time.Duration) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if d <= 0 {
			return invalid("ProgressEvery", d, "> 0")
		}
		c.progressEvery = d
		return nil
	})
}

// RetryAfter is the NakWithDelay delay for a throttled outcome that names
// no retry-after. The default is the pacer's Config.DefaultRetryAfter
// (Pacer.RetryAfter; pacer.DefaultRetryAfter, 1s, unless the pacer sets
// another), so that the delay the pacer's pushback waits and the one the
// message is nakked with are the same.
func RetryAfter(d time.Duration) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if d <= 0 {
			return invalid("RetryAfter", d, "> 0")
		}
		c.retryAfter = d
		return nil
	})
}

// Backoff sets the NakWithDelay delay after a handler error, given how many
// times the message has been delivered (1 the first time). The default
// value is DefaultBackoff.
func Backoff(f func(delivered uint64) time.Duration) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if f == nil {
			return invalid("Backoff", "nil", "a function")
		}
		c.backoff = f
		return nil
	})
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
// probe is fed.
func WithProbe(probe *Probe) ConsumeOption {
	return consumeOption(func(c *consumeConfig) error {
		if probe == nil {
			return invalid("WithProbe", "nil", "a *Probe from NewProbe")
		}
		c.probe = probe
		return nil
	})
}

// Buffer sets how many messages a core subscription holds while they wait
// for the pace; a message that arrives when the buffer is full is dropped
// and counted. The default value is DefaultBuffer (1024).
func Buffer(n int) SubscribeOption {
	return subscribeOption(func(c *subscribeConfig) error {
		if n < 1 {
			return invalid("Buffer", n, "≥ 1")
		}
		c.buffer = n
		return nil
	})
}
