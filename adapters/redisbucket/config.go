package redisbucket

import (
	"errors"
	"log/slog"
	"time"

	"github.com/jobpacer/pacer/adapters/internal/lease"
	"github.com/jobpacer/pacer/pacer"
)

// Config configures a Bucket. Key and Rate are required; every other field
// has a default, given in its doc. New checks every field and returns a
// *pacer.FieldError naming the first bad one; the toml tags give each
// field's name in those errors and in a config file a program decodes
// into a Config.
type Config struct {
	// Key names the shared limit: every worker whose Config has the same
	// Key (and Prefix) on the same Redis shares one bucket. Required.
	Key string `toml:"key"`
	// Rate is the fleet-wide limit in jobs per second, in
	// [pacer.MinRate, pacer.MaxRate] (1e-8 to 1e9). All
	// workers sharing a Key should use the same Rate and Burst; when they
	// differ, each call settles the bucket under the caller's values, so
	// the last caller wins. Required.
	Rate float64 `toml:"rate"`
	// Burst is the fleet-wide bucket's capacity in jobs: how many may go
	// at once after the fleet was idle: at least pacer.MinCapacity (1), and
	// Burst ÷ Rate at most pacer.MaxFill seconds. The default value is
	// pacer.DefaultBurst (1).
	Burst float64 `toml:"burst"`
	// ExpectedWorkers is how many workers normally share the Key. During
	// a Redis outage each worker paces itself at Rate ÷ max(ExpectedWorkers,
	// workers last seen in Redis, 1). The default value, 0, means "use the
	// count last seen in Redis"; a worker that has never reached Redis
	// then runs at the whole Rate, so set it when a fleet may start during
	// an outage. At most MaxExpectedWorkers.
	ExpectedWorkers int `toml:"expected_workers"`
	// LeaseTime sizes leases and bounds how late a leased token may be
	// used: a worker leases about LeaseTime's worth of its share at a
	// time, and a leased token not used within LeaseTime of its due time
	// expires. Longer means fewer Redis calls and a looser short-window
	// bound (see the package doc). The default value is DefaultLeaseTime
	// (100ms); it must be in [MinLeaseTime, MaxLeaseTime], [1ms, 10s].
	LeaseTime time.Duration `toml:"lease_time"`
	// RetryInterval is how often a worker that fell back to its local
	// share tries Redis again, at least MinRetryInterval (10ms). The
	// default value is DefaultRetryInterval (500ms).
	RetryInterval time.Duration `toml:"retry_interval"`
	// Timeout bounds each Redis call (through its context; a go-redis
	// client honours it when its Options.ContextTimeoutEnabled is set,
	// else its ReadTimeout applies). A call that fails or times out
	// starts the fallback. Until the first failed call returns, a worker
	// whose leases run out waits, so this is also the longest stall an
	// outage causes (a go-redis client retries a refused dial 5 times,
	// 100ms apart, by default: such a call lasts the whole Timeout). The
	// default value is DefaultTimeout (250ms).
	Timeout time.Duration `toml:"timeout"`
	// Prefix is put before Key to make the Redis key names:
	// Prefix+"{"+Key+"}" holds the bucket and Prefix+"{"+Key+"}:workers"
	// the workers seen lately (one hash slot, so Redis Cluster works). The
	// default value is DefaultPrefix ("pacer:fleet:").
	Prefix string `toml:"prefix"`
	// Logger receives fallback and rejoin events. The default value, nil,
	// means slog.Default().
	Logger *slog.Logger `toml:"-"`
	// Clock is the worker's local clock, used to pace leased tokens and
	// the fallback. Redis's own clock (TIME) keeps the shared bucket, so
	// the local clock may be skewed. The default value, nil, means the
	// system clock.
	Clock pacer.Clock `toml:"-"`
}

// Default values and bounds of Config's optional fields.
const (
	// DefaultLeaseTime is Config.LeaseTime's default.
	DefaultLeaseTime = lease.DefaultLeaseTime
	// MinLeaseTime and MaxLeaseTime bound Config.LeaseTime.
	MinLeaseTime = lease.MinLeaseTime
	MaxLeaseTime = lease.MaxLeaseTime
	// DefaultRetryInterval is Config.RetryInterval's default.
	DefaultRetryInterval = lease.DefaultRetryInterval
	// MinRetryInterval bounds Config.RetryInterval: a shorter one would
	// call a Redis that is down in a loop.
	MinRetryInterval = lease.MinRetryInterval
	// DefaultTimeout is Config.Timeout's default.
	DefaultTimeout = lease.DefaultTimeout
	// MinTimeout bounds Config.Timeout.
	MinTimeout = lease.MinTimeout
	// DefaultPrefix is Config.Prefix's default.
	DefaultPrefix = "pacer:fleet:"
)

// ErrClosed is returned by Wait after Close.
var ErrClosed = errors.New("redisbucket: closed")

// ErrRefused is wrapped by the error New returns when Redis answers but
// will not run the bucket's script: scripting disabled or renamed, a
// command the script needs (TIME, HSET, ZADD…) denied by ACL, or a server
// that is not Redis enough.
var ErrRefused = errors.New("redisbucket: Redis refuses the bucket script")

func invalid(field string, v any, allowed string) error {
	return &pacer.FieldError{Pkg: "redisbucket", Field: field, Value: v, Want: allowed}
}

// WithDefaults returns c with the default of every optional field
// applied, as New applies them (Logger and Clock included), or a
// *pacer.FieldError naming the first bad field. It does not connect.
func (c Config) WithDefaults() (Config, error) {
	err := c.fill()
	return c, err
}

// MaxExpectedWorkers bounds Config.ExpectedWorkers: beyond it a worker's
// share of the fleet during an outage is too small to run on.
const MaxExpectedWorkers = lease.MaxExpectedWorkers

// Check reports whether New would accept c: nil, or a *pacer.FieldError
// naming the first bad field, as New returns. It does not change c and
// needs no Redis.
func (c Config) Check() error { return c.fill() }

// fill checks c and applies the defaults.
func (c *Config) fill() error {
	_, err := c.lease()
	return err
}

// lease checks c, applies the defaults and returns the lease machinery's
// settings.
func (c *Config) lease() (lease.Config, error) {
	lc := lease.Config{
		Pkg: "redisbucket", Server: "Redis", Key: c.Key, Rate: c.Rate, Burst: c.Burst,
		ExpectedWorkers: c.ExpectedWorkers, LeaseTime: c.LeaseTime, RetryInterval: c.RetryInterval,
		Timeout: c.Timeout, Logger: c.Logger, Clock: c.Clock, ErrClosed: ErrClosed, Refused: refused,
	}
	if err := lc.Fill(); err != nil {
		return lc, err
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Burst, c.LeaseTime, c.RetryInterval, c.Timeout = lc.Burst, lc.LeaseTime, lc.RetryInterval, lc.Timeout
	c.Logger, c.Clock = lc.Logger, lc.Clock
	return lc, nil
}
