package pacer

import (
	"math"
	"time"
)

// ReasonAdvertised: the downstream said how many calls it has left until
// its window resets (Advise), and the pace spreads them over the window.
const ReasonAdvertised Reason = "advertised"

// advState is what the downstream last advertised. It is guarded by
// Pacer.mu.
type advState struct {
	limit float64 // jobs per second until until
	left  float64 // jobs that may still be dispatched until then
	until int64   // base ticks the advertised window resets; 0: no advice
}

// Advise tells the pacer what the downstream advertises: remaining calls
// are left until its window resets, reset from now (the RateLimit and
// X-RateLimit-Remaining/-Reset headers). Until then the pace is at most
// the remaining calls, less the other jobs in flight (which will use some), over
// the time left (down to Base × MinFactor), and no more than those are
// dispatched: with none left, dispatch waits for the reset. Nothing is
// throttled and nothing counts as pushback: a downstream that says how
// much is left is not pushed into a 429 at all. A later Advise replaces
// an earlier one; after reset the advice lapses. A negative remaining or
// a reset ≤ 0 is ignored. It is safe for concurrent use and never blocks
// on dispatch.
func (p *Pacer) Advise(remaining int, reset time.Duration) {
	p.AdviseAt(p.base.s.now(), remaining, reset)
}

// AdviseAt is Advise at base ticks now (a time read from the pacer's
// clock).
func (p *Pacer) AdviseAt(now int64, remaining int, reset time.Duration) {
	if remaining < 0 || reset <= 0 {
		return
	}
	reset = min(reset, maxPause)
	p.mu.Lock()
	defer p.mu.Unlock()
	until := now + int64(reset)<<tickShift
	// The advice comes with the answer of a job still in flight (Advise
	// before Done): the others will each use one of the remaining.
	inFlight := max(p.inFlight()-1, 0)
	left := math.Max(0, float64(remaining)-float64(inFlight))
	p.adv = advState{limit: left / reset.Seconds(), left: left, until: until}
	p.advOn.Store(true)
	if left < 1 {
		p.base.s.hold(until) // none left: no dispatch before the reset
	}
	p.applyPace()
}

// spendAdvice counts n jobs dispatched at now against what the
// downstream advertised, and holds dispatch until its reset once none is
// left.
func (p *Pacer) spendAdvice(now int64, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.adv.until == 0 || now >= p.adv.until {
		p.lapseAdvice()
		return
	}
	p.adv.left -= float64(n)
	if p.adv.left < 1 {
		p.base.s.hold(p.adv.until)
	}
}

// lapseAdvice forgets the advice. It requires mu held.
func (p *Pacer) lapseAdvice() {
	if p.adv.until != 0 {
		p.adv = advState{}
		p.advOn.Store(false)
		p.applyPace()
	}
}

// Advise reports what the downstream advertised with this permit's
// answer: see Pacer.Advise. Call it before Done. It does nothing on a
// nil permit.
func (pm *Permit) Advise(remaining int, reset time.Duration) {
	if pm == nil || pm.p == nil {
		return
	}
	pm.p.Advise(remaining, reset)
}

// RetryAfter returns the retry-after a Throttled outcome asking for d
// stands for: d, or Config.DefaultRetryAfter when d ≤ 0. Adapters use it
// to hand a throttled job back to its queue with the worker's own
// default, as the pacer's pushback uses it. It is safe for concurrent use.
func (p *Pacer) RetryAfter(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return p.cfg.DefaultRetryAfter
}

// inFlight returns the jobs dispatched and not finished.
func (p *Pacer) inFlight() int64 {
	done := p.succeeded.Load() + p.failed.Load() + p.throttled.Load()
	more := p.moreJobs.Load()
	return int64(p.issued() + more - done)
}

// advised returns the advertised pace at now, or +Inf if none holds. It
// lapses the advice once its window has reset. It requires mu held.
func (p *Pacer) advised(now int64) float64 {
	if p.adv.until == 0 {
		return math.Inf(1)
	}
	if now >= p.adv.until {
		p.adv = advState{}
		p.advOn.Store(false)
		return math.Inf(1)
	}
	return p.adv.limit
}
