package pacer

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
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

func (c *Config) fill() error {
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
		return invalid("max_in_flight", c.MaxInFlight, "in [0, 10000] (0: no cap)") // InFlightLimit
	}
	if c.BacklogTarget < 0 {
		return invalid("backlog_target", c.BacklogTarget, "≥ 0 (0: DefaultBacklogTarget, 10s)")
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
		return invalid("period", c.Period, "≥ 10ms (0: DefaultControllerPeriod, 1s)") // MinPeriod
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
		return invalid("default_retry_after", c.DefaultRetryAfter, "≥ 0 (0: DefaultRetryAfter, 1s)")
	}
	if c.PauseAfter == 0 {
		c.PauseAfter = DefaultPauseAfter
	}
	if c.PauseAfter < 0 {
		return invalid("pause_after", c.PauseAfter, "≥ 0 (0: DefaultPauseAfter, 5s)")
	}
	if c.StormShare == 0 {
		c.StormShare = DefaultStormShare
	}
	if math.IsNaN(c.StormShare) || c.StormShare < 0 || c.StormShare > 1 {
		return invalid("storm_share", c.StormShare, "in (0, 1] (0: DefaultStormShare, 0.5)")
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

// maxPause bounds one pause, whatever retry-after a downstream sends.
const maxPause = 24 * time.Hour

// Pacer is what a worker asks before it takes a job: it composes a manual
// LeakyBucket (the base pace, Base × factor, whose factor the controller
// sets), the ceiling (Rate, Burst) and an in-flight cap. Acquire waits for
// a slot and the pace; Permit.Done reports the job's outcome. The pace is
// the lowest of three: the ceiling; what the backlog rule asks (Run moves
// its factor with the backlog); and the downstream's capacity as the
// pacer has learned it from pushback and latency, which it probes back up
// and past (docs/capacity.md). Stats.Reason says which one it is.
//
// The ceiling is enforced by construction rather than by a second bucket
// in series: the factor is clamped so that Base × factor ≤ Rate, and
// BaseBurst ≤ Burst, so the base bucket's schedule never admits more than
// Burst + Rate × t in any window t (beyond the catch-up of a late timer;
// see TokenBucket). A second bucket at the same rate would only lose
// permits to goroutine jitter: callers reach it out of order and late.
//
// Time that runs backwards, a Clock stepped back, never takes permits
// away: a time before the latest one the pace has seen is taken as that
// latest time, as in TokenBucket, and a permit is stamped with the time
// its jobs were admitted at. Acquire and TryAcquire of n = 0 are granted
// at once (after Close, Acquire returns ErrClosed and TryAcquire fails, as
// for any n): the permit admits no jobs, holds no slot and no pace, and
// its methods do nothing.
//
// A Pacer is safe for concurrent use. Make one with New.
type Pacer struct {
	cfg   Config // set by New; SetBase changes BacklogHigh under mu
	base  *LeakyBucket
	slots *slots // nil: no cap

	// Jobs dispatched are counted without an atomic add of their own:
	// each permit takes a slot in the permit slabs (see newPermit), so
	// Dispatched is the permits handed out, plus moreJobs (the jobs
	// beyond the first of each permit), less the jobs given back.
	moreJobs    atomic.Uint64 // wraps below zero when jobs are given back
	succeeded   atomic.Uint64
	failed      atomic.Uint64
	throttled   atomic.Uint64
	pauses      atomic.Uint64
	probeErrors atomic.Uint64
	misuse      atomic.Uint64 // Done, Cancel or CancelN on a permit that no longer holds the jobs
	advOn       atomic.Bool   // an Advise holds: dispatch counts against it; written under mu
	slab        atomic.Pointer[permitSlab]
	pauseStart  atomic.Int64 // base ticks at which the last pause began; written under mu
	cutAt       atomic.Int64 // base ticks of the last cut; written under mu
	nextSample  atomic.Int64 // base ticks of the next sample; written under mu

	mu          sync.Mutex // guards the fields below
	rate        float64    // the ceiling
	factor      float64    // the base bucket's factor: pace ÷ Base
	bfactor     float64    // the backlog rule's factor, ≥ 1
	backlog     Backlog
	pausedUntil int64 // base ticks
	cap         capState
	conc        concState
	adv         advState
}

// New returns a Pacer configured by c, or an error that names the first
// bad field of c.
func New(c Config) (*Pacer, error) {
	c, base, err := c.check()
	if err != nil {
		return nil, err
	}
	p := &Pacer{cfg: c, base: base, rate: c.Rate, factor: 1, bfactor: 1}
	p.pauseStart.Store(math.MinInt64)
	p.cutAt.Store(math.MinInt64)
	now := base.s.now()
	p.cap.init(now)
	p.nextSample.Store(now + sampleTicks)
	if c.MaxInFlight > 0 {
		p.slots = &slots{max: c.MaxInFlight}
	}
	p.initConc(c, now)
	return p, nil
}

// Permit is the right to run n jobs, given by Acquire and TryAcquire.
// Call Done once when the jobs are finished, or Cancel if they never ran.
//
// A Permit is a pointer with an atomic state, like x/time/rate's
// *Reservation: Done, Cancel and CancelN are safe to call from several
// goroutines, and only the first Done or Cancel takes effect. A second one
// is a no-op counted in Stats.PermitMisuse, so a permit given back twice
// can never free an in-flight slot it does not hold. The methods of a nil
// *Permit do nothing.
type Permit struct {
	used atomic.Int32 // jobs reported by Done or given back; n once finished
	n    int32        // jobs admitted; set before the permit is handed out, then read only
	p    *Pacer       // likewise
	// at is the base ticks at dispatch, or at Start once it is called:
	// outcomes and latency are judged from it.
	at atomic.Int64
}

// Start records that the permit's jobs begin now: with a learned
// concurrency limit (Config.LatencyTarget) their latency is measured from
// here to Done, not from dispatch, and their outcome counts as that of a
// job sent now (a cut since dispatch does not make it stale). An adapter that takes its permits
// before it has the jobs (natspacer takes them before its Fetch, and an
// idle stream keeps one in a long poll) calls it as the handler starts,
// so that waiting for a job is not taken for a slow downstream. It reads
// the clock only when the limit is on, and never blocks. It does nothing
// on a nil permit.
func (pm *Permit) Start() {
	if pm == nil || pm.p == nil || !pm.p.conc.on {
		return
	}
	pm.at.Store(max(pm.p.base.s.now(), pm.at.Load()))
}

// N returns the number of jobs the permit admits now: n at Acquire, less
// what CancelN gave back, and 0 once Done or Cancel has been called.
func (pm *Permit) N() int {
	if pm == nil {
		return 0
	}
	return int(pm.n - pm.used.Load())
}

// Acquire waits until n jobs may start: a free in-flight slot, then the
// pace (and the Limiter, if any), each first come first served. It
// returns ctx.Err() if ctx ends first, taking nothing, and ErrClosed after
// Close. n = 0 is granted at once (see Pacer); n < 0 is an error wrapping
// ErrInvalid. It is safe for concurrent use.
func (p *Pacer) Acquire(ctx context.Context, n int) (*Permit, error) {
	if n < 0 || n > math.MaxInt32 {
		return nil, invalid("n", n, "an integer in [0, 2³¹-1]")
	}
	if p.base.s.isClosed() {
		return nil, ErrClosed
	}
	if n == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return noJobs, nil
	}
	if p.slots != nil {
		if p.cfg.MaxInFlight > 0 && n > p.cfg.MaxInFlight || p.conc.on && n > InFlightLimit {
			return nil, invalid("n", n, fmt.Sprintf("≤ max_in_flight (%d)", p.cfg.MaxInFlight))
		}
		if err := p.slots.acquire(ctx, n, p.base.s.closed); err != nil {
			return nil, err
		}
	}
	f := float64(n)
	at, err := p.base.s.wait(ctx, f)
	if err != nil {
		p.releaseSlots(n)
		return nil, err
	}
	if p.cfg.Limiter != nil {
		if err := p.cfg.Limiter.Wait(ctx, n); err != nil {
			p.base.give(f)
			p.releaseSlots(n)
			return nil, err
		}
		at = p.base.s.now() // the Limiter may have waited
	}
	return p.grant(n, at), nil
}

// TryAcquire is Acquire without waiting: it returns a permit for n jobs
// and true if they may start now, or nil and false and takes nothing. It
// never blocks. It fails while callers wait in Acquire, and always with a
// Config.Limiter, which can only wait; n = 0 is granted all the same (see
// Pacer).
func (p *Pacer) TryAcquire(n int) (*Permit, bool) {
	if n < 1 || n > math.MaxInt32 || p.cfg.Limiter != nil || p.base.s.isClosed() {
		if n == 0 && !p.base.s.isClosed() {
			return noJobs, true
		}
		return nil, false
	}
	if p.cfg.MaxInFlight > 0 && n > p.cfg.MaxInFlight || p.conc.on && n > InFlightLimit {
		return nil, false // more than the in-flight cap ever holds
	}
	if p.slots != nil && !p.slots.tryAcquire(n) {
		return nil, false
	}
	now := p.base.s.now()
	if p.base.s.waiters.Load() != 0 {
		p.releaseSlots(n)
		return nil, false
	}
	at, ok := p.base.s.take(now, float64(n))
	if !ok {
		p.releaseSlots(n)
		return nil, false
	}
	return p.grant(n, at), true
}

// noJobs is the permit for n = 0: no pacer, no jobs, methods that do
// nothing. It is never written, so one serves every caller.
var noJobs = new(Permit)

// grant counts n jobs dispatched at now and returns their permit.
func (p *Pacer) grant(n int, now int64) *Permit {
	if now >= p.nextSample.Load() {
		p.trySample(now)
	}
	if n > 1 {
		p.moreJobs.Add(uint64(n - 1))
	}
	if p.advOn.Load() {
		p.spendAdvice(now, n)
	}
	pm := p.newPermit()
	pm.p, pm.n = p, int32(n)
	pm.at.Store(now)
	return pm
}

// permitSlabSize is how many permits newPermit allocates at once.
const permitSlabSize = 63

// permitSlab is a block of fresh permits, handed out once each in order.
// A permit is never reused (that would let a stale Done reach the next
// holder); the block is garbage once none of its permits is referenced.
type permitSlab struct {
	next atomic.Int64 // index of the next permit to hand out
	base uint64       // permits handed out from the slabs before this one
	ps   [permitSlabSize]Permit
}

// issued returns how many permits the pacer has handed out: the count is
// taken when a permit's slot is, before the permit is returned.
func (p *Pacer) issued() uint64 {
	s := p.slab.Load()
	if s == nil {
		return 0
	}
	return s.base + uint64(min(s.next.Load(), permitSlabSize))
}

// newPermit returns a zero Permit never handed out before. It allocates
// one slab per permitSlabSize permits rather than one object per permit,
// which keeps Acquire's cost and the garbage collector's work close to
// what they were when Permit was a value.
func (p *Pacer) newPermit() *Permit {
	if s := p.slab.Load(); s != nil {
		if i := s.next.Add(1) - 1; i < permitSlabSize {
			return &s.ps[i]
		}
	}
	return p.newSlab()
}

// newSlab is newPermit's slow path, once a slab: it installs a fresh
// slab and returns its first permit, or a permit of the slab another
// caller installed first.
func (p *Pacer) newSlab() *Permit {
	for {
		s := p.slab.Load()
		if s != nil {
			if i := s.next.Add(1) - 1; i < permitSlabSize {
				return &s.ps[i]
			}
		}
		ns := new(permitSlab)
		ns.next.Store(1)
		if s != nil {
			ns.base = s.base + permitSlabSize
		}
		if p.slab.CompareAndSwap(s, ns) {
			return &ns.ps[0]
		}
	}
}

func (p *Pacer) releaseSlots(n int) {
	if p.slots != nil {
		p.slots.release(n)
	}
}

// Done reports the outcome of the permit's jobs: nil for success, an error
// that is or wraps a *Throttled for pushback, any other error for failure.
// Pushback lowers the pace to just under the good rate measured, once per
// event: throttled outcomes of jobs dispatched before the last cut add
// nothing to it. A retry-after of at least PauseAfter, or a storm, also
// pauses dispatch until the retry-after ends. See docs/capacity.md.
//
// Only the first Done or Cancel counts: a later one does nothing but add
// one to Stats.PermitMisuse. Done never blocks.
func (pm *Permit) Done(outcome error) {
	if pm == nil || pm.p == nil {
		return
	}
	p := pm.p
	n := pm.finish()
	if n == 0 {
		p.misuse.Add(1)
		return
	}
	p.releaseSlots(int(n))
	if outcome == nil && p.cfg.LatencyTarget == 0 {
		p.succeeded.Add(uint64(n)) // observe's common case, inlined
		return
	}
	p.observe(pm.at.Load(), int(n), outcome)
}

// Cancel gives back a permit whose jobs never ran (the job was abandoned,
// or a fetch brought fewer jobs than the permit admits): its tokens go back
// to the pace, and to the Limiter if it is a Refunder, and they count as
// neither dispatched nor done. Call it instead of Done. Only the first
// Done or Cancel counts: a later one does nothing but add one to
// Stats.PermitMisuse. Cancel never blocks.
func (pm *Permit) Cancel() {
	if pm == nil || pm.p == nil {
		return
	}
	if n := pm.finish(); n > 0 {
		pm.p.giveBack(int(n))
	} else {
		pm.p.misuse.Add(1)
	}
}

// CancelN gives back k of the permit's jobs and keeps the rest, changing
// the permit in place: Done then reports the other N()−k. CancelN(N()) is
// Cancel. A k outside [1, N()], or a permit already Done or cancelled,
// gives back nothing and counts as a misuse in Stats.PermitMisuse. It is
// safe to call concurrently with Done and Cancel: the jobs given back and
// the jobs reported never add up to more than the permit held.
func (pm *Permit) CancelN(k int) {
	if pm == nil || pm.p == nil {
		return
	}
	for {
		used := pm.used.Load()
		if k < 1 || k > int(pm.n-used) {
			pm.p.misuse.Add(1)
			return
		}
		if pm.used.CompareAndSwap(used, used+int32(k)) {
			pm.p.giveBack(k)
			return
		}
	}
}

// finish marks every job the permit still holds as used and returns how
// many that was: 0 if the permit was already finished.
func (pm *Permit) finish() int64 {
	if used := pm.used.Swap(pm.n); used < pm.n {
		return int64(pm.n - used)
	}
	return 0
}

// giveBack returns k jobs that never ran: to the pace, to the Limiter if it
// is a Refunder, to the in-flight cap, and off the dispatched count.
func (p *Pacer) giveBack(k int) {
	p.base.give(float64(k))
	if r, ok := p.cfg.Limiter.(Refunder); ok {
		r.Refund(k)
	}
	p.moreJobs.Add(^uint64(k - 1))
	p.releaseSlots(k)
}

// maxFactor is the highest factor allowed: MaxFactor, and Base × factor
// never above the ceiling. It requires mu held.
func (p *Pacer) maxFactor() float64 {
	return min(p.cfg.MaxFactor, p.rate/p.base.Leak())
}

// setFactor clamps f and sets it on the base bucket. It requires mu held.
func (p *Pacer) setFactor(f float64) {
	f = min(max(f, p.cfg.MinFactor), p.maxFactor())
	if f != p.factor {
		p.factor = p.base.setFactor(p.base.s.now(), f)
	}
}

// Run runs the controller until ctx ends, then returns nil. Every Period it
// reads the Probe (if any) and moves the backlog rule's factor: up while
// the backlog is deep, back toward 1 as it drains. A probe error keeps the
// factor as it is and is counted in Stats.ProbeErrors. The capacity probe
// after pushback moves with dispatches (every 100ms while jobs start) and
// at each Step; without Run and without dispatches it stands still.
func (p *Pacer) Run(ctx context.Context) error {
	clock := p.base.s.clock
	for {
		t := clock.NewTimer(p.cfg.Period)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		p.Step(ctx)
	}
}

// Step runs one controller period now: Run calls it every Period. It is
// exported for simulations that drive a Pacer on their own clock.
func (p *Pacer) Step(ctx context.Context) {
	var b Backlog
	var err error
	if p.cfg.Probe != nil {
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Period)
		b, err = p.cfg.Probe.Backlog(pctx)
		cancel()
	}
	now := p.base.s.now()
	p.mu.Lock()
	rec := p.sample(now)
	defer p.log(rec)
	defer p.mu.Unlock()
	if err != nil {
		p.probeErrors.Add(1)
		return
	}
	p.backlog = b
	r := 1 - min(1, float64(b.Pending)/p.cfg.BacklogHigh)
	f := p.bfactor
	row := p.base.row // the ADJMAP row for BaseBurst, fixed at New
	switch {
	case r <= row.LBound:
		f *= row.LFactor
	case f > 1 && r >= row.UBound:
		f = max(1, f*row.UFactor)
	}
	p.bfactor = min(max(f, 1), p.maxFactor())
	p.applyPace()
}

// SetRate changes the ceiling; the factor is cut back at once if
// Base × factor would pass it. rate must be at least Base.
func (p *Pacer) SetRate(rate float64) error {
	if err := checkRate("rate", rate); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if base := p.base.Leak(); rate < base {
		return invalid("rate", rate, fmt.Sprintf("≥ base (%g)", base))
	}
	p.rate = rate
	p.bfactor = min(p.bfactor, p.maxFactor())
	p.applyPace()
	return nil
}

// SetBase changes the base pace, settling the base bucket first. base must
// not exceed the ceiling.
func (p *Pacer) SetBase(base float64) error {
	if err := checkRate("base", base); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if rate := p.rate; base > rate {
		return invalid("base", base, fmt.Sprintf("≤ rate (%g)", rate))
	}
	// Lower the factor first if the new base would take the pace past the
	// ceiling: between SetLeak and applyPace the bucket runs at
	// base × the old factor, which takers use meanwhile.
	if f := p.rate / base; p.factor > f {
		p.factor = p.base.setFactor(p.base.s.now(), f)
	}
	if err := p.base.SetLeak(base); err != nil {
		p.applyPace() // the factor lowered above goes back
		return err
	}
	if p.cfg.highDerived {
		p.cfg.BacklogHigh = base * p.cfg.BacklogTarget.Seconds()
	}
	p.bfactor = max(1, min(p.bfactor, p.maxFactor()))
	p.applyPace()
	return nil
}

// Close makes every waiting and future Acquire return ErrClosed. Permits
// already given stay valid.
func (p *Pacer) Close() {
	p.base.Close()
}

// EstimateWait returns how long an Acquire of n started now would wait for
// the pace, counting the jobs the callers already waiting asked for and any
// pause. It is an estimate: the factor may change meanwhile, and callers
// waiting for an in-flight slot are not counted.
func (p *Pacer) EstimateWait(n int) time.Duration {
	now := p.base.s.now()
	ahead := p.base.s.queuedTokens()
	p.mu.Lock()
	pace := p.base.Leak() * p.factor
	until := p.pausedUntil
	p.mu.Unlock()
	d := time.Duration((ahead + float64(n) - max(0, p.base.s.tokens(now))) / pace * float64(time.Second))
	if now < until {
		d += time.Duration((until - now) >> tickShift)
	}
	return max(d, 0)
}

// Stats is a snapshot of a Pacer.
type Stats struct {
	Pace        float64   // jobs per second now: min(Base × Factor, Ceiling); 0 while paused
	Ceiling     float64   // the ceiling's rate, jobs per second
	Base        float64   // the base pace, jobs per second
	Factor      float64   // the controller's factor
	Backlog     Backlog   // the last backlog read
	InFlight    int64     // jobs admitted and neither finished nor given back: Dispatched − Succeeded − Failed − Throttled
	Dispatched  uint64    // jobs admitted, less those given back by Cancel and CancelN
	Succeeded   uint64    // jobs Done with nil
	Failed      uint64    // jobs Done with an error other than Throttled
	Throttled   uint64    // jobs Done with a Throttled outcome
	Pauses      uint64    // pauses by a retry-after of at least PauseAfter or by a storm; one however many outcomes extend it
	PausedUntil time.Time // end of the current pause; zero if not paused
	ProbeErrors uint64    // probe reads that failed
	Reason      Reason    // what sets the pace now
	Goodput     float64   // jobs done (succeeded or failed) per second over the last second
	Capacity    float64   // the downstream's estimated capacity, jobs per second; 0 while no pushback limits the pace
	Cuts        uint64    // pace cuts by pushback, one per event
	// ConcurrencyLimit is the learned concurrency limit (see
	// Config.LatencyTarget); 0 when it is off.
	ConcurrencyLimit int
	// ConcurrencyCuts counts the cuts of the concurrency limit by latency.
	ConcurrencyCuts uint64
	// LatencyNoLoad is the no-load latency the concurrency limit is
	// judged against (the least mean latency of the last 5-10 s);
	// LatencyMean, LatencyP50 and LatencyP90 are the mean, median and
	// 90th percentile latency of its last judgement. All are 0 while
	// unknown or off.
	LatencyNoLoad, LatencyMean, LatencyP50, LatencyP90 time.Duration
	// PermitMisuse counts the calls on a Permit that did nothing: Done or
	// Cancel after the first Done or Cancel, and CancelN of more jobs than
	// the permit holds. It is a caller bug; the pacer's counts stay right.
	PermitMisuse uint64
}

// Stats returns a snapshot of the pacer's state and counters.
//
// InFlight is derived from the counters rather than kept in one more, so
// that the fast path does two atomic adds fewer: Dispatched less the jobs
// finished, from the same loads, so that the snapshot agrees with itself.
// The finished counters are read before Dispatched, so InFlight is never
// negative: a permit is counted dispatched before it is handed out, and
// its jobs finished only after. Of Dispatched's two parts, moreJobs is
// read before issued: a give-back seen in moreJobs came after its
// permit's claim, so issued, read later, holds that permit too (read the
// other way, an Acquire and Cancel between the reads would show one
// dispatched fewer than there were, and InFlight −1). Done gives back its in-flight slot before
// it counts the outcome, so InFlight may count a job that is finishing,
// and pass MaxInFlight by the jobs finishing at that instant.
func (p *Pacer) Stats() Stats {
	now := p.base.s.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{
		Ceiling: p.rate, Base: p.base.Leak(), Factor: p.factor,
		Backlog:   p.backlog,
		Succeeded: p.succeeded.Load(), Failed: p.failed.Load(), Throttled: p.throttled.Load(),
		Pauses: p.pauses.Load(), ProbeErrors: p.probeErrors.Load(),
		Reason: p.reason(), Capacity: p.capacityEstimate(now), Cuts: p.cap.cuts,
		PermitMisuse: p.misuse.Load(),
	}
	more := p.moreJobs.Load() // after the finished counters, before issued: see above
	s.Dispatched = p.issued() + more
	if k := &p.conc; k.on {
		s.ConcurrencyLimit, s.ConcurrencyCuts = int(math.Round(k.limit)), k.cuts
		if b := min(k.base[0], k.base[1]); !math.IsInf(b, 1) {
			s.LatencyNoLoad = time.Duration(b)
		}
		s.LatencyMean, s.LatencyP50, s.LatencyP90 = time.Duration(k.mean), time.Duration(k.p50), time.Duration(k.p90)
	}
	s.InFlight = int64(s.Dispatched - s.Succeeded - s.Failed - s.Throttled)
	s.Goodput, _ = p.goodput(now)
	s.Pace = min(s.Base*s.Factor, s.Ceiling)
	if now < p.pausedUntil {
		s.Pace = 0
		s.PausedUntil = p.base.s.epoch.Add(time.Duration(p.pausedUntil >> tickShift))
	}
	return s
}
