package pacer

import (
	"context"
	"fmt"
	"math"
	"time"
)

// AdjRow is one row of an ADJMAP, the table that steers a LeakyBucket's
// factor: the row applies to buckets whose capacity is at least MinCap.
// With fill ratio r (level ÷ capacity), r ≤ LBound multiplies the factor by
// LFactor, r ≥ UBound multiplies it by UFactor, and in between the factor
// returns toward 1 (by LFactor from below, by UFactor from above, stopping
// exactly at 1).
type AdjRow struct {
	MinCap  float64 `toml:"min_cap"`
	LBound  float64 `toml:"lbound"`
	LFactor float64 `toml:"lfactor"`
	UBound  float64 `toml:"ubound"`
	UFactor float64 `toml:"ufactor"`
}

// DefaultAdjMap returns the ADJMAP of asyncutils.buckets (Python)
// (context.LEAKY_BUCKET_ADJMAP): rows for capacities from 256, from 128, and
// a catch-all from 0.
func DefaultAdjMap() []AdjRow {
	return []AdjRow{
		{MinCap: 256, LBound: 0.15, LFactor: 1.1, UBound: 0.85, UFactor: 0.9},
		{MinCap: 128, LBound: 0.23, LFactor: 1.2, UBound: 0.77, UFactor: 0.81},
		{MinCap: 0, LBound: 0.3, LFactor: 1.4, UBound: 0.7, UFactor: 0.73},
	}
}

// maxAdaptSteps bounds the periods adapt replays in one call.
const maxAdaptSteps = 4096

// Defaults of LeakyConfig, and of the same Config fields, taken from
// asyncutils.buckets (Python).
const (
	// DefaultMinFactor is the least factor: context.LEAKY_BUCKET_DEFAULT_MIN_FACTOR.
	DefaultMinFactor = 0.1
	// DefaultMaxFactor is the greatest factor: context.LEAKY_BUCKET_DEFAULT_MAX_FACTOR.
	DefaultMaxFactor = 10
	// DefaultAdaptPeriod is how often a LeakyBucket adapts its factor
	// (LeakyConfig.Period): context.LEAKY_BUCKET_WAIT_FOR_TOKENS_TICK. It
	// is not the Pacer's controller period, DefaultControllerPeriod.
	DefaultAdaptPeriod = 100 * time.Millisecond
)

// CheckAdjMap reports whether m is a usable ADJMAP: not empty, strictly
// descending in MinCap, ending in a catch-all row (MinCap ≤ 0), and in each
// row 0 ≤ LBound < UBound ≤ 1, LFactor ≥ 1 and 0 < UFactor ≤ 1.
func CheckAdjMap(m []AdjRow) error {
	if len(m) == 0 {
		return invalid("adjmap", "[]", "at least one row")
	}
	for i, r := range m {
		field := func(name string) string { return fmt.Sprintf("adjmap[%d].%s", i, name) }
		for _, v := range []float64{r.MinCap, r.LBound, r.LFactor, r.UBound, r.UFactor} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return invalid(fmt.Sprintf("adjmap[%d]", i), r, "finite numbers")
			}
		}
		if i > 0 && r.MinCap >= m[i-1].MinCap {
			return invalid(field("min_cap"), r.MinCap, fmt.Sprintf("less than the row before (%g): rows descend in min_cap", m[i-1].MinCap))
		}
		if r.LBound < 0 || r.LBound >= r.UBound || r.UBound > 1 {
			return invalid(field("lbound"), fmt.Sprintf("%g (ubound %g)", r.LBound, r.UBound), "0 ≤ lbound < ubound ≤ 1")
		}
		if r.LFactor < 1 {
			return invalid(field("lfactor"), r.LFactor, "≥ 1")
		}
		if r.UFactor <= 0 || r.UFactor > 1 {
			return invalid(field("ufactor"), r.UFactor, "in (0, 1]")
		}
	}
	if last := m[len(m)-1]; last.MinCap > 0 {
		return invalid(fmt.Sprintf("adjmap[%d].min_cap", len(m)-1), last.MinCap, "≤ 0 in the last row, a catch-all row; without one, small buckets would never adapt")
	}
	return nil
}

// rowFor returns the first row whose MinCap ≤ capacity; m must have passed
// CheckAdjMap.
func rowFor(m []AdjRow, capacity float64) AdjRow {
	for _, r := range m {
		if r.MinCap <= capacity {
			return r
		}
	}
	return m[len(m)-1]
}

// next applies the row's rule to factor f at fill ratio r, unclamped.
func (row AdjRow) next(f, r float64) float64 {
	switch {
	case r <= row.LBound:
		return f * row.LFactor
	case r >= row.UBound:
		return f * row.UFactor
	case f > 1:
		return max(1, f*row.UFactor)
	case f < 1:
		return min(1, f*row.LFactor)
	}
	return f
}

// LeakyConfig configures a LeakyBucket. Capacity and Leak are required; the
// other fields default to the values of asyncutils.buckets (Python).
type LeakyConfig struct {
	// Capacity is the most the bucket holds, in tokens. Required.
	Capacity float64
	// Leak is the rate the level falls at, in tokens per second, before the
	// factor is applied. Required.
	Leak float64
	// MinFactor and MaxFactor bound the factor. The default values are
	// DefaultMinFactor (0.1) and DefaultMaxFactor (10).
	MinFactor, MaxFactor float64
	// FactorLocked forbids SetFactor (asyncutils.buckets (Python)'s
	// external_factor_settable=False). The default value is false: the
	// factor may be set.
	FactorLocked bool
	// AdjMap steers the factor by the fill ratio. The default value is
	// DefaultAdjMap().
	AdjMap []AdjRow
	// Period is how often the factor adapts, whatever the call rate. The
	// default value is DefaultAdaptPeriod (100ms).
	Period time.Duration
	// Manual turns the ADJMAP adaptation off: the factor moves only by
	// SetFactor. A Pacer's base bucket is manual; its controller sets it.
	Manual bool
	// Clock is the time source. The default value (nil) is the system clock.
	Clock Clock
}

// LeakyBucket is an adaptive leaky bucket: its level falls at Leak × factor
// tokens per second, and an acquire of n fits if the level plus n is at
// most Capacity. It starts empty. Unless Manual, the factor adapts once per
// Period by the ADJMAP rule on the fill ratio, clamped to
// [MinFactor, MaxFactor]; the level is settled at the old factor before
// every factor change.
//
// Like TokenBucket it runs on a schedule of due times, so Acquire is exact
// at any rate. TryAcquire never blocks; Acquire waits. All methods are safe for concurrent use.
//
// Time that runs backwards never adds to the level, as in TokenBucket: a
// time (given to an …At method, or read from the clock) before the latest
// one seen is taken as that latest time, and a clock stepped back by d
// leaks nothing until it has caught up the d. A new bucket is empty at
// whatever time it is first asked at. An acquire of n = 0 is granted, as
// in TokenBucket: TryAcquire(0) is true (but false after Close, as every
// TryAcquire is) and Acquire(ctx, 0) returns 0 and nil at once, or
// ErrClosed, or ctx.Err().
type LeakyBucket struct {
	s sched

	// guarded by s.mu:
	leak       float64
	factor     float64
	minF, maxF float64
	locked     bool
	manual     bool
	adjmap     []AdjRow
	row        AdjRow
	period     int64 // ticks
	next       int64 // next adaptation, ticks
}

// NewLeakyBucket returns an empty bucket configured by c, or an error that
// names the first bad field.
func NewLeakyBucket(c LeakyConfig) (*LeakyBucket, error) {
	if err := checkCapacity("capacity", c.Capacity); err != nil {
		return nil, err
	}
	if err := checkRate("leak", c.Leak); err != nil {
		return nil, err
	}
	if c.MinFactor == 0 {
		c.MinFactor = DefaultMinFactor
	}
	if c.MaxFactor == 0 {
		c.MaxFactor = DefaultMaxFactor
	}
	if err := positive("min_factor", c.MinFactor); err != nil {
		return nil, err
	}
	if err := positive("max_factor", c.MaxFactor); err != nil {
		return nil, err
	}
	if c.MinFactor > c.MaxFactor {
		return nil, invalid("min_factor", c.MinFactor, fmt.Sprintf("≤ max_factor (%g)", c.MaxFactor))
	}
	if c.MinFactor > 1 || c.MaxFactor < 1 {
		return nil, invalid("min_factor, max_factor", fmt.Sprintf("%g, %g", c.MinFactor, c.MaxFactor), "min_factor ≤ 1 ≤ max_factor: the factor starts at 1")
	}
	if c.AdjMap == nil {
		c.AdjMap = DefaultAdjMap()
	}
	if err := CheckAdjMap(c.AdjMap); err != nil {
		return nil, err
	}
	if c.Period == 0 {
		c.Period = DefaultAdaptPeriod
	}
	if c.Period < MinPeriod {
		return nil, invalid("period", c.Period, fmt.Sprintf("≥ %v (0: DefaultAdaptPeriod, %v)", MinPeriod, DefaultAdaptPeriod))
	}
	if err := checkFill(c.Leak*c.MinFactor, c.Capacity); err != nil {
		return nil, err
	}
	b := &LeakyBucket{
		leak: c.Leak, factor: 1, minF: c.MinFactor, maxF: c.MaxFactor,
		locked: c.FactorLocked, manual: c.Manual,
		adjmap: append([]AdjRow(nil), c.AdjMap...),
		period: int64(c.Period) << tickShift,
	}
	b.row = rowFor(b.adjmap, c.Capacity)
	b.s.init(c.Clock, c.Leak, c.Capacity)
	b.next = b.period
	if !b.manual {
		b.s.tick = b.adapt
	}
	return b, nil
}

func (b *LeakyBucket) clamp(f float64) float64 { return min(max(f, b.minF), b.maxF) }

// adapt applies the ADJMAP rule at every period boundary up to now and
// returns the next boundary. It requires s.mu held. Takes always adapt
// first, so no take has happened after a boundary it settles.
func (b *LeakyBucket) adapt(now int64) int64 {
	if b.manual {
		return math.MaxInt64
	}
	for steps := 0; b.next <= now; steps++ {
		if steps == maxAdaptSteps {
			// Long idle: skip to the last boundary, as if the periods
			// between had left the factor where it is.
			b.next += (now - b.next) / b.period * b.period
		}
		at := b.next
		c := b.s.cfg.Load()
		r := min(max(1-b.s.tokens(at)/c.capacity, 0), 1)
		f := b.clamp(b.row.next(b.factor, r))
		if f != b.factor {
			b.factor = f
			b.s.reconfigure(at, b.leak*f, c.capacity)
		} else if r == 0 {
			// Empty, and the factor is at rest: nothing changes until the
			// next acquire, so skip to the first boundary after now.
			b.next = at + ((now-at)/b.period+1)*b.period
			break
		}
		b.next = at + b.period
	}
	return b.next
}

// TryAcquire adds n to the level if it fits under the capacity now, and
// reports whether it did. It never blocks, and fails while callers wait in
// Acquire (they are served first) and for n < 0. n = 0 is granted, even
// while others wait.
func (b *LeakyBucket) TryAcquire(n int) bool { return b.tryAcquire(b.s.now(), n) }

// TryAcquireAt is TryAcquire at time now; a time before the latest one
// seen is taken as the latest (see LeakyBucket).
func (b *LeakyBucket) TryAcquireAt(now time.Time, n int) bool {
	return b.tryAcquire(b.s.see(b.s.ticks(now)), n)
}

func (b *LeakyBucket) tryAcquire(now int64, n int) bool {
	f := float64(n)
	if n < 1 || f > b.s.cfg.Load().capacity || b.s.isClosed() {
		return n == 0 && !b.s.isClosed()
	}
	if !b.manual {
		b.s.mu.Lock()
		b.adapt(now)
		b.s.mu.Unlock()
	}
	if b.s.waiters.Load() != 0 {
		return false
	}
	_, ok := b.s.take(now, f)
	return ok
}

// Acquire adds n to the level, waiting in order behind earlier callers
// until it fits, and returns how long it really waited. n larger than the
// capacity can never fit and is an error at once, as is n < 0; n = 0
// returns at once. If ctx ends first, Acquire adds nothing and returns
// ctx.Err(); after Close it returns ErrClosed.
func (b *LeakyBucket) Acquire(ctx context.Context, n int) (time.Duration, error) {
	if err := checkAmount(n); err != nil {
		return 0, err
	}
	if c := b.s.cfg.Load().capacity; float64(n) > c {
		return 0, invalid("n", n, fmt.Sprintf("≤ capacity (%g): it can never fit", c))
	}
	if b.s.isClosed() {
		return 0, ErrClosed
	}
	if n == 0 {
		return 0, ctx.Err()
	}
	start := b.s.clock.Now()
	_, err := b.s.wait(ctx, float64(n))
	return max(b.s.clock.Now().Sub(start), 0), err // 0 if the clock was stepped back meanwhile
}

// Level returns the bucket's level now, in tokens.
func (b *LeakyBucket) Level() float64 { return b.LevelAt(b.s.clock.Now()) }

// LevelAt returns the level at time now, or at the latest time seen if now
// is before it.
func (b *LeakyBucket) LevelAt(now time.Time) float64 {
	t := b.s.ticks(now)
	b.s.mu.Lock()
	b.adapt(t)
	b.s.mu.Unlock()
	return max(0, b.s.cfg.Load().capacity-b.s.tokens(t))
}

// Capacity returns the capacity in tokens.
func (b *LeakyBucket) Capacity() float64 { return b.s.cfg.Load().capacity }

// Leak returns the leak rate in tokens per second, before the factor.
func (b *LeakyBucket) Leak() float64 {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return b.leak
}

// Factor returns the current factor.
func (b *LeakyBucket) Factor() float64 { return b.FactorAt(b.s.clock.Now()) }

// FactorAt returns the factor at time now, after any adaptation due by then.
func (b *LeakyBucket) FactorAt(now time.Time) float64 {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.adapt(b.s.ticks(now))
	return b.factor
}

// SetFactor sets the factor, clamped to [MinFactor, MaxFactor], after
// settling the level at the old one. It returns ErrFactorNotSettable on a
// bucket made with FactorLocked, and an error for f not finite and > 0.
func (b *LeakyBucket) SetFactor(f float64) error { return b.SetFactorAt(b.s.clock.Now(), f) }

// SetFactorAt is SetFactor at time now.
func (b *LeakyBucket) SetFactorAt(now time.Time, f float64) error {
	if b.locked {
		return ErrFactorNotSettable
	}
	if err := positive("factor", f); err != nil {
		return err
	}
	b.setFactor(b.s.ticks(now), f)
	return nil
}

// ResetFactor sets the factor back to 1, even on a bucket made with
// FactorLocked: it is the owner's reset, not an outside setting.
func (b *LeakyBucket) ResetFactor() { b.setFactor(b.s.now(), 1) }

func (b *LeakyBucket) setFactor(now int64, f float64) float64 {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.adapt(now)
	f = b.clamp(f)
	if f != b.factor {
		b.factor = f
		b.s.reconfigure(now, b.leak*f, b.s.cfg.Load().capacity)
	}
	return f
}

// SetLeak changes the leak rate, settling the level first.
func (b *LeakyBucket) SetLeak(leak float64) error {
	if err := checkRate("leak", leak); err != nil {
		return err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if err := checkFill(leak*b.minF, b.s.cfg.Load().capacity); err != nil {
		return err
	}
	now := b.s.now()
	b.adapt(now)
	b.leak = leak
	b.s.reconfigure(now, leak*b.factor, b.s.cfg.Load().capacity)
	return nil
}

// Close makes every waiting and future Acquire return ErrClosed and every
// TryAcquire fail: asyncutils.buckets (Python)'s context exit, which stops
// the bucket.
func (b *LeakyBucket) Close() { b.s.close() }

// give takes n back off the level (an acquire that was not used).
func (b *LeakyBucket) give(n float64) { b.s.refund(b.s.now(), n) }
