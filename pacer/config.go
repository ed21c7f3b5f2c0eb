package pacer

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults of Config's optional fields. A config loader uses these rather
// than literals, so that the library and the CLI share one default.
const (
	// DefaultBurst is Config.Burst's default, in jobs.
	DefaultBurst = 1
	// DefaultBacklogTarget is Config.BacklogTarget's default: BacklogHigh
	// is then ten seconds of work at the base pace.
	DefaultBacklogTarget = 10 * time.Second
	// DefaultControllerPeriod is Config.Period's default, the controller's
	// sample period. It is not a LeakyBucket's adaptation period,
	// DefaultAdaptPeriod.
	DefaultControllerPeriod = time.Second
	// DefaultCut is Config.Cut's default: pushback before any good rate
	// is measured halves the pace.
	DefaultCut = 0.5
	// DefaultRetryAfter is Config.DefaultRetryAfter's default: the
	// retry-after of a Throttled outcome that gives none.
	DefaultRetryAfter = time.Second
	// DefaultPauseAfter is Config.PauseAfter's default: a retry-after of
	// 5s or more pauses the whole queue.
	DefaultPauseAfter = 5 * time.Second
	// DefaultStormShare is Config.StormShare's default: half the outcomes
	// of the last second throttled is a storm.
	DefaultStormShare = 0.5
)

// Config configures a Pacer. Rate is required; every other field has a
// default, given in its doc. New checks every field and returns a
// *FieldError naming the first bad one.
type Config struct {
	// Rate is the hard ceiling in jobs per second: no window of dispatches
	// holds more than Burst + Rate × its length. Required.
	Rate float64 `toml:"rate"`
	// Burst is the ceiling's burst in jobs: the most dispatched at once
	// after idle time. The default value is DefaultBurst (1).
	Burst float64 `toml:"burst"`
	// Base is the smooth base pace in jobs per second, which the
	// controller's factor multiplies. It must not exceed Rate. The default
	// value is Rate.
	Base float64 `toml:"base"`
	// BaseBurst is the capacity of the base pace's leaky bucket in jobs;
	// at most Burst. The default value is Burst.
	BaseBurst float64 `toml:"base_burst"`
	// MinFactor and MaxFactor bound the factor. The factor also never
	// takes Base × factor above Rate. The default values are
	// DefaultMinFactor (0.1) and DefaultMaxFactor (10).
	MinFactor float64 `toml:"min_factor"`
	MaxFactor float64 `toml:"max_factor"`
	// MaxInFlight caps the permits held at once (acquired, not yet Done).
	// The default value, 0, means no cap.
	MaxInFlight int `toml:"max_in_flight"`
	// Probe reads the queue's backlog for the controller. The default
	// value, nil, means no backlog: the pace is then the base pace, or
	// less after pushback.
	Probe Probe `toml:"-"`
	// Limiter, if set, is obeyed after the pace: a limit shared with
	// other processes, say. The default value, nil, means none.
	Limiter Limiter `toml:"-"`
	// BacklogHigh is the backlog, in jobs, at which the pressure is
	// highest. The default value is BacklogTarget × Base, derived again
	// when SetBase changes Base.
	BacklogHigh float64 `toml:"backlog_high"`
	// BacklogTarget is BacklogHigh given as seconds of work at the base
	// pace. The default value is DefaultBacklogTarget (10s).
	BacklogTarget time.Duration `toml:"backlog_target"`
	// AdjMap is the rule the controller applies each period to the
	// pressure ratio r = 1 − min(1, backlog ÷ BacklogHigh), with the row
	// chosen by BaseBurst: r ≤ LBound (deep backlog) multiplies the factor
	// by LFactor; r ≥ UBound (shallow) lets a factor above 1 sink back by
	// UFactor; in between the factor holds (hysteresis). This factor never
	// goes under 1: backlog alone never slows the pace below Base; only
	// pushback does (see Done). The default value is DefaultAdjMap().
	AdjMap []AdjRow `toml:"adjmap"`
	// Period is the controller's sample period. The default value is
	// DefaultControllerPeriod (1s).
	Period time.Duration `toml:"period"`
	// Cut multiplies the pace on pushback when the good rate cannot be
	// measured yet (less than 200ms of outcomes); otherwise the pace drops
	// to just under the good rate measured (see docs/capacity.md). The
	// default value is DefaultCut (0.5).
	Cut float64 `toml:"cut"`
	// DefaultRetryAfter is the retry-after of a Throttled outcome that
	// gives none. The default value is DefaultRetryAfter
	// (1s).
	DefaultRetryAfter time.Duration `toml:"default_retry_after"`
	// PauseAfter is the shortest retry-after that pauses the whole queue
	// until it ends. A shorter one only lowers the pace: the throttled job
	// waits its own retry-after (its adapter retries it then) and the
	// others go on at the lower pace. The default value is
	// DefaultPauseAfter (5s).
	PauseAfter time.Duration `toml:"pause_after"`
	// StormShare is the share of throttled outcomes over the last second
	// (at least 5 of them) that makes a storm: the downstream is
	// overwhelmed, and the queue pauses for the retry-after however short.
	// The default value is DefaultStormShare (0.5).
	StormShare float64 `toml:"storm_share"`
	// LatencyTarget, if set, turns on a learned concurrency limit: the
	// pacer measures the latency of every successful job (dispatch, or
	// Permit.Start, to Done) and holds the jobs in flight (at most
	// MaxInFlight) to what the downstream serves without queueing: the
	// limit grows while the mean latency stays near the no-load latency
	// (the least smoothed mean of the last 5-10 s) and is cut to limit ×
	// no-load ÷ mean latency (Little's law; at most by half) when the mean
	// rises past 1.2 × the no-load latency, or when the 90th percentile
	// passes LatencyTarget. LatencyAuto sets no target: the no-load
	// latency alone is the reference. See docs/capacity.md. The default
	// value, 0, means no concurrency limit but MaxInFlight.
	LatencyTarget time.Duration `toml:"latency_target"`
	// Logger, if set, gets one INFO line per pace cut by pushback and one
	// per cut of the concurrency limit by latency (each at most one a
	// second; the cuts in between are counted in the next), and one per
	// pause. The default value, nil, logs nothing.
	Logger *slog.Logger `toml:"-"`
	// Clock is the time source. The default value (nil) is the system
	// clock.
	Clock Clock `toml:"-"`

	highDerived bool // BacklogHigh came from BacklogTarget: SetBase rederives it
}

// fill applies the defaults of c's optional fields and checks every
// field, returning a *FieldError naming the first bad one.
func (c *Config) fill() error {
	if err := c.fillPace(); err != nil {
		return err
	}
	return c.fillController()
}

// fillPace fills and checks the ceiling, the base pace and the in-flight
// cap.
func (c *Config) fillPace() error {
	if err := checkRate("rate", c.Rate); err != nil {
		return err
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if err := wholeJobs("burst", c.Burst); err != nil {
		return err
	}
	if c.Base == 0 {
		c.Base = c.Rate
	}
	if err := checkRate("base", c.Base); err != nil {
		return err
	}
	if c.Base > c.Rate {
		return invalid("base", c.Base, fmt.Sprintf("≤ rate (%g): the ceiling caps the pace", c.Rate))
	}
	if c.BaseBurst == 0 {
		c.BaseBurst = c.Burst
	}
	if err := wholeJobs("base_burst", c.BaseBurst); err != nil {
		return err
	}
	if c.BaseBurst > c.Burst {
		return invalid("base_burst", c.BaseBurst, fmt.Sprintf("≤ burst (%g): the ceiling caps bursts", c.Burst))
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > InFlightLimit {
		return invalid("max_in_flight", c.MaxInFlight, fmt.Sprintf("in [0, %d] (0: no cap)", InFlightLimit))
	}
	return nil
}

// fillController fills and checks the controller's settings: backlog,
// period, pushback and the concurrency limit.
func (c *Config) fillController() error {
	if c.BacklogTarget < 0 {
		return invalid("backlog_target", c.BacklogTarget, fmt.Sprintf("≥ 0 (0: DefaultBacklogTarget, %v)", DefaultBacklogTarget))
	}
	if c.BacklogTarget == 0 {
		c.BacklogTarget = DefaultBacklogTarget
	}
	c.highDerived = c.BacklogHigh == 0
	if c.highDerived {
		c.BacklogHigh = c.Base * c.BacklogTarget.Seconds()
	}
	if err := positive("backlog_high", c.BacklogHigh); err != nil {
		return err
	}
	if c.Period == 0 {
		c.Period = DefaultControllerPeriod
	}
	if c.Period < MinPeriod {
		return invalid("period", c.Period, fmt.Sprintf("≥ %v (0: DefaultControllerPeriod, %v)", MinPeriod, DefaultControllerPeriod))
	}
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
		return invalid("storm_share", c.StormShare, fmt.Sprintf("in (0, 1] (0: DefaultStormShare, %g)", DefaultStormShare))
	}
	if c.LatencyTarget < 0 && c.LatencyTarget != LatencyAuto {
		return invalid("latency_target", c.LatencyTarget, "≥ 0 (0: no learned concurrency limit), or LatencyAuto (\"auto\")")
	}
	if c.AdjMap == nil {
		c.AdjMap = DefaultAdjMap()
	}
	return nil
}

// WithDefaults returns c with the default of every optional field
// applied, as New applies them, or a *FieldError naming the first bad
// field. A config loader uses it to show the settings a Pacer will run
// with, and to tell a key written as 0 from one left out.
func (c Config) WithDefaults() (Config, error) {
	c, _, err := c.check()
	return c, err
}

// check fills c and makes the base pace's bucket, which checks the
// factor bounds and AdjMap.
func (c Config) check() (Config, *LeakyBucket, error) {
	if err := c.fill(); err != nil {
		return c, nil, err
	}
	base, err := NewLeakyBucket(LeakyConfig{
		Capacity: c.BaseBurst, Leak: c.Base,
		MinFactor: c.MinFactor, MaxFactor: c.MaxFactor,
		AdjMap: c.AdjMap, Manual: true, Clock: c.Clock,
	})
	if err != nil {
		return c, nil, err
	}
	c.MinFactor, c.MaxFactor = base.minF, base.maxF
	return c, base, nil
}
