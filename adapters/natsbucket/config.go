package natsbucket

import (
	"errors"
	"log/slog"
	"regexp"
	"time"

	"github.com/jobpacer/pacer/adapters/internal/lease"
	"github.com/jobpacer/pacer/pacer"
)

// Config configures a Bucket. Key and Rate are required; every other field
// has a default, given in its doc. New checks every field and returns a
// *pacer.FieldError naming the first bad one; the toml tags give each
// field's name in those errors and in a config file a program decodes into
// a Config.
type Config struct {
	// Key names the shared limit: every worker whose Config has the same
	// Key, on the same key-value bucket, shares one limit. It is the
	// bucket's key (Prefix+Key), so it is made of letters, digits and
	// - _ = . (no leading or trailing dot). Required.
	Key string `toml:"key"`
	// Rate is the fleet-wide limit in jobs per second, in
	// [pacer.MinRate, pacer.MaxRate]. All workers sharing a Key should use
	// the same Rate and Burst: each call settles the schedule under the
	// caller's values, so the last caller wins. Required.
	Rate float64 `toml:"rate"`
	// Burst is the fleet-wide bucket's capacity in jobs, at least 1, and
	// Burst ÷ Rate at most pacer.MaxFill seconds. The default value is 1.
	Burst float64 `toml:"burst"`
	// ExpectedWorkers is how many workers normally share the Key: during
	// a NATS outage each paces itself at Rate ÷ max(ExpectedWorkers,
	// workers last seen, 1). The default value, 0, means the count last
	// seen. At most 10000.
	ExpectedWorkers int `toml:"expected_workers"`
	// LeaseTime sizes leases and bounds how late a leased token may be
	// used (see redisbucket.Config.LeaseTime). The default value is
	// 100ms; in [1ms, 10s].
	LeaseTime time.Duration `toml:"lease_time"`
	// RetryInterval is how often a worker that fell back to its local
	// share tries NATS again, at least 10ms. The default value is 500ms.
	RetryInterval time.Duration `toml:"retry_interval"`
	// Timeout bounds each call to the bucket (a read, a compare-and-set
	// write and, every 5s, a clock read; conflicts retried within it). A
	// call that fails or times out starts the fallback. The default value
	// is 250ms.
	Timeout time.Duration `toml:"timeout"`
	// Prefix is put before Key to make the bucket's key; each worker also
	// writes Prefix+Key+".clock."+id to read the server's clock (deleted
	// at Close). The default value is DefaultPrefix ("fleet.").
	Prefix string `toml:"prefix"`
	// Logger receives fallback and rejoin events. The default value, nil,
	// means slog.Default().
	Logger *slog.Logger `toml:"-"`
	// Clock is the worker's local clock. The server's clock (the time
	// JetStream stamps on a write) keeps the schedule, so the local clock
	// may be skewed. The default value, nil, means the system clock.
	Clock pacer.Clock `toml:"-"`
}

// Default values of Config's optional fields.
const (
	// DefaultPrefix is Config.Prefix's default.
	DefaultPrefix = "fleet."
	// DefaultBucket is the key-value bucket the CLI keeps its fleets in.
	DefaultBucket = "pacer_fleet"
)

// ErrClosed is returned by Wait after Close.
var ErrClosed = errors.New("natsbucket: closed")

// ErrRefused is wrapped by the error New returns when NATS answers but
// will not hold the fleet: no such key-value bucket, no JetStream, no
// permission, or a key that holds something other than a schedule.
var ErrRefused = errors.New("natsbucket: NATS refuses the fleet bucket")

func invalid(field string, v any, allowed string) error {
	return &pacer.FieldError{Pkg: "natsbucket", Field: field, Value: v, Want: allowed}
}

var validKey = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// WithDefaults returns c with the default of every optional field applied,
// as New applies them, or a *pacer.FieldError naming the first bad field.
func (c Config) WithDefaults() (Config, error) {
	_, err := c.lease()
	return c, err
}

// Check reports whether New would accept c: nil, or a *pacer.FieldError
// naming the first bad field. It needs no NATS.
func (c Config) Check() error {
	_, err := c.lease()
	return err
}

// lease checks c, applies the defaults and returns the lease machinery's
// settings.
func (c *Config) lease() (lease.Config, error) {
	lc := lease.Config{
		Pkg: "natsbucket", Server: "NATS", Key: c.Key, Rate: c.Rate, Burst: c.Burst,
		ExpectedWorkers: c.ExpectedWorkers, LeaseTime: c.LeaseTime, RetryInterval: c.RetryInterval,
		Timeout: c.Timeout, Logger: c.Logger, Clock: c.Clock, ErrClosed: ErrClosed, Refused: refused,
	}
	if err := lc.Fill(); err != nil {
		return lc, err
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !validKey.MatchString(c.Key) {
		return lc, invalid("key", c.Key, "letters, digits and - / _ = . (a key-value key; no leading, trailing or double dot)")
	}
	if !validKey.MatchString(c.Prefix + c.Key) {
		return lc, invalid("prefix", c.Prefix, "letters, digits and - / _ = . ending in a dot or not, so that prefix+key is a key-value key")
	}
	c.Burst, c.LeaseTime, c.RetryInterval, c.Timeout = lc.Burst, lc.LeaseTime, lc.RetryInterval, lc.Timeout
	c.Logger, c.Clock = lc.Logger, lc.Clock
	return lc, nil
}
