package pacer

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults of KeyedConfig's optional fields.
const (
	// DefaultMaxKeys is KeyedConfig.MaxKeys's default: the most keys
	// held at once.
	DefaultMaxKeys = 100_000
	// DefaultIdleAfter is KeyedConfig.IdleAfter's default: a key unused
	// for this long is forgotten (by Keyed.Run, or when MaxKeys is
	// reached).
	DefaultIdleAfter = time.Minute
	// DefaultWeight is KeyLimits.Weight's default.
	DefaultWeight = 1
)

// KeyLimits are the limits of one key of a Keyed pacer. A zero field
// takes the value of KeyedConfig.Key, whose own zero fields take the
// defaults given below.
type KeyLimits struct {
	// Rate is the key's ceiling in jobs per second: the key is never
	// paced above it, whatever its share of the worker's ceiling. The
	// default value is KeyedConfig.Rate, the worker's ceiling.
	Rate float64 `toml:"rate"`
	// Burst is the key's burst in jobs. The default value is 1.
	Burst float64 `toml:"burst"`
	// Weight is the key's weight in the fair share of the worker's
	// ceiling: a key of weight 2 gets twice the share of a key of weight
	// 1 when both have more jobs than the ceiling lets through. The
	// default value is DefaultWeight (1).
	Weight float64 `toml:"weight"`
}

// KeyedConfig configures a Keyed pacer. Rate is required; every other
// field has a default, given in its doc. NewKeyed checks every field and
// returns a *FieldError naming the first bad one.
type KeyedConfig struct {
	// Rate is the worker's ceiling in jobs per second, over all keys.
	// Required.
	Rate float64 `toml:"rate"`
	// Burst is the worker's burst in jobs. The default value is
	// DefaultBurst (1).
	Burst float64 `toml:"burst"`
	// Key holds the limits of every key without an entry in Keys.
	Key KeyLimits `toml:"key"`
	// Keys holds the limits of named keys; a zero field takes Key's.
	Keys map[string]KeyLimits `toml:"keys"`
	// MaxKeys caps the keys held at once. A job of a new key beyond it is
	// refused with ErrTooManyKeys (and an ERROR line once a minute in
	// Logger), after the keys idle for IdleAfter are forgotten. The
	// default value is DefaultMaxKeys (100,000).
	MaxKeys int `toml:"max_keys"`
	// IdleAfter is how long a key with no job asked for is kept: then its
	// learned capacity and its counts are forgotten. The default value is
	// DefaultIdleAfter (1m).
	IdleAfter time.Duration `toml:"idle_after"`
	// Cut multiplies a key's pace on pushback when its good rate cannot
	// be measured yet (as Config.Cut). The default value is DefaultCut
	// (0.5).
	Cut float64 `toml:"cut"`
	// DefaultRetryAfter is the retry-after of a Throttled outcome that
	// gives none. The default value is DefaultRetryAfter (1s).
	DefaultRetryAfter time.Duration `toml:"default_retry_after"`
	// PauseAfter is the shortest retry-after that pauses the key (only
	// that key) until it ends. The default value is DefaultPauseAfter
	// (5s).
	PauseAfter time.Duration `toml:"pause_after"`
	// StormShare is the share of a key's throttled outcomes over its last
	// second (at least 5 of them) that pauses the key for the
	// retry-after however short. The default value is DefaultStormShare
	// (0.5).
	StormShare float64 `toml:"storm_share"`
	// Logger, if set, gets one DEBUG line per pace cut of a key and one
	// ERROR line a minute while MaxKeys refuses keys. The default value,
	// nil, logs nothing.
	Logger *slog.Logger `toml:"-"`
	// Clock is the time source. The default value (nil) is the system
	// clock.
	Clock Clock `toml:"-"`
}

func (c *KeyedConfig) fill() error {
	if err := checkRate("rate", c.Rate); err != nil {
		return err
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if err := wholeJobs("burst", c.Burst); err != nil {
		return err
	}
	if err := c.Key.check("key", KeyLimits{Rate: c.Rate, Burst: 1, Weight: DefaultWeight}); err != nil {
		return err
	}
	c.Key = c.Key.or(KeyLimits{Rate: c.Rate, Burst: 1, Weight: DefaultWeight})
	for name, l := range c.Keys {
		if err := l.check(fmt.Sprintf("keys.%q", name), c.Key); err != nil {
			return err
		}
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.MaxKeys < 1 {
		return invalid("max_keys", c.MaxKeys, fmt.Sprintf("≥ 1 (0: DefaultMaxKeys, %d)", DefaultMaxKeys))
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = DefaultIdleAfter
	}
	if c.IdleAfter < time.Second {
		return invalid("idle_after", c.IdleAfter, fmt.Sprintf("≥ 1s (0: DefaultIdleAfter, %v)", DefaultIdleAfter))
	}
	return c.fillPushback()
}

func (c *KeyedConfig) fillPushback() error {
	if c.Cut == 0 {
		c.Cut = DefaultCut
	}
	if math.IsNaN(c.Cut) || c.Cut <= 0 || c.Cut > 1 {
		return invalid("cut", c.Cut, "in (0, 1]")
	}
	if c.DefaultRetryAfter == 0 {
		c.DefaultRetryAfter = DefaultRetryAfter
	}
	if c.DefaultRetryAfter < 0 {
		return invalid("default_retry_after", c.DefaultRetryAfter, fmt.Sprintf("≥ 0 (0: DefaultRetryAfter, %v)", DefaultRetryAfter))
	}
	if c.PauseAfter == 0 {
		c.PauseAfter = DefaultPauseAfter
	}
	if c.PauseAfter < 0 {
		return invalid("pause_after", c.PauseAfter, fmt.Sprintf("≥ 0 (0: DefaultPauseAfter, %v)", DefaultPauseAfter))
	}
	if c.StormShare == 0 {
		c.StormShare = DefaultStormShare
	}
	if math.IsNaN(c.StormShare) || c.StormShare < 0 || c.StormShare > 1 {
		return invalid("storm_share", c.StormShare, "in (0, 1] (0: DefaultStormShare, 0.5)")
	}
	return nil
}

// check checks l, whose zero fields take def's, under the TOML table
// name (key, keys."acme").
func (l KeyLimits) check(name string, def KeyLimits) error {
	if l.Rate != 0 {
		if err := checkRate(name+".rate", l.Rate); err != nil {
			return err
		}
	}
	if l.Burst != 0 {
		if err := wholeJobs(name+".burst", l.Burst); err != nil {
			return err
		}
	}
	if l.Weight != 0 {
		if math.IsNaN(l.Weight) || math.IsInf(l.Weight, 0) || l.Weight < 1e-6 || l.Weight > 1e6 {
			return invalid(name+".weight", l.Weight, "a number in [1e-06, 1e+06]")
		}
	}
	if f := l.or(def); f.Burst/f.Rate > MaxFill {
		return invalid(name+".burst", f.Burst, fmt.Sprintf("≤ rate × %gs (%g)", float64(MaxFill), f.Rate*MaxFill))
	}
	return nil
}

// or returns l with its zero fields taken from def.
func (l KeyLimits) or(def KeyLimits) KeyLimits {
	if l.Rate == 0 {
		l.Rate = def.Rate
	}
	if l.Burst == 0 {
		l.Burst = def.Burst
	}
	if l.Weight == 0 {
		l.Weight = def.Weight
	}
	return l
}

// WithDefaults returns c with the default of every optional field
// applied, as NewKeyed applies them, or a *FieldError naming the first
// bad field.
func (c KeyedConfig) WithDefaults() (KeyedConfig, error) {
	err := c.fill()
	return c, err
}
