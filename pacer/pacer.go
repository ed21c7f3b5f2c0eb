package pacer

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

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

func (p *Pacer) releaseSlots(n int) {
	if p.slots != nil {
		p.slots.release(n)
	}
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
