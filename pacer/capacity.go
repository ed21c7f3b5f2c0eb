package pacer

import (
	"context"
	"log/slog"
	"math"
	"time"
)

// Reason says what sets a Pacer's pace now; Stats.Reason reports it.
type Reason string

// The reasons for a Pacer's pace.
const (
	// ReasonCeiling: the pace is the ceiling, Config.Rate.
	ReasonCeiling Reason = "ceiling"
	// ReasonBacklog: the pace is what the backlog rule asks, Base × factor,
	// below the ceiling.
	ReasonBacklog Reason = "backlog"
	// ReasonPushback: the downstream pushed back (Throttled outcomes) and
	// the pace is held under the capacity measured then, probing back up.
	ReasonPushback Reason = "pushback"
	// ReasonConcurrency: the learned concurrency limit holds the jobs in
	// flight (see Config.LatencyTarget): callers wait for a job to end,
	// not for the pace.
	ReasonConcurrency Reason = "concurrency"
)

// The capacity-seeking controller's constants; docs/capacity.md explains
// each choice.
const (
	// sampleTicks is how often the good rate is sampled and the probe
	// curve re-evaluated: at the first dispatch after it (or outcome,
	// when the outcome reads the clock anyway), or at Step.
	sampleTicks = int64(100*time.Millisecond) << tickShift
	// windowSlots samples make the window the good rate is measured over
	// (about a second).
	windowSlots = 10
	// recentTicks and recentDone bound the recent part of the window a
	// cut measures the good rate over.
	recentTicks = int64(300*time.Millisecond) << tickShift
	recentDone  = 20
	// minWindow is the shortest measured window the good rate is trusted
	// on; with less, a cut multiplies the pace by Config.Cut instead.
	minWindow = int64(200*time.Millisecond) << tickShift
	// beta is the cut: the pace drops to beta × the good rate measured
	// when the downstream pushed back.
	beta = 0.95
	// recoverSecs is how long the concave part of the probe takes to
	// bring the pace from the cut back to the last known limit.
	recoverSecs = 0.75
	// probeStep and probeDoubleSecs shape the convex part beyond the last
	// known limit: limit × (1 + probeStep × (2^(t/probeDoubleSecs) − 1)).
	probeStep       = 0.05
	probeDoubleSecs = 0.5
	// noiseShare is the share of throttled outcomes in the window under
	// which a 429 that comes while the pace is below the last known limit
	// is taken for jitter, not for a lower capacity: it does not cut.
	noiseShare = 0.02
	// stormMin is the fewest throttled outcomes in the window that make a
	// storm, whatever their share.
	stormMin = 5
	// logEvery spaces the INFO lines of pace cuts; cuts in between are
	// counted in the next line.
	logEvery = int64(time.Second) << tickShift
)

// slot is one sample of the window: jobs done (succeeded or failed) and
// throttled in it, and the active (not paused) ticks it covers.
type slot struct {
	done, thr uint64
	ticks     int64
	paced     float64 // jobs the pace allowed in it: pace × active seconds
}

// capState is the capacity-seeking controller's state. It is guarded by
// Pacer.mu.
type capState struct {
	limit float64 // jobs per second the downstream is held to; +Inf: none
	cause Reason  // ReasonPushback: what set limit
	wmax  float64 // the last known limit: the pace the downstream took at the last cut
	from  float64 // limit just after the last cut
	probe int64   // active ticks since the last cut: the probe curve's time
	cuts  uint64
	// tolerated counts 429s under the last known limit, rare enough to
	// be dispatch jitter, that did not cut the pace.
	tolerated uint64

	lastAt            int64 // ticks of the last sample
	lastDone, lastThr uint64
	win               [windowSlots]slot
	head              int

	logAt    int64 // ticks of the last INFO line
	unlogged int   // cuts since then, not yet logged
}

func (c *capState) init(now int64) {
	c.limit = math.Inf(1)
	c.lastAt = now
	c.logAt = math.MinInt64 / 2
}

// floorPace is the lowest pace pushback can set: Base × MinFactor. It
// requires mu held.
func (p *Pacer) floorPace() float64 { return p.base.Leak() * p.cfg.MinFactor }

// maxPace is the highest pace: the ceiling, and Base × MaxFactor. It
// requires mu held.
func (p *Pacer) maxPace() float64 { return min(p.rate, p.base.Leak()*p.cfg.MaxFactor) }

// doneCount returns the jobs done (succeeded or failed) so far.
func (p *Pacer) doneCount() uint64 { return p.succeeded.Load() + p.failed.Load() }

// observe records the outcome of a permit of n jobs dispatched (or, after
// Permit.Start, started) at ticks at. A success or failure reads the clock
// only for the concurrency limit: the window is sampled at dispatch (see
// trySample), so the common Done is a few atomic adds.
func (p *Pacer) observe(at int64, n int, outcome error) {
	if outcome != nil {
		if retry, ok := IsThrottled(outcome); ok {
			p.throttled.Add(uint64(n))
			if retry <= 0 {
				retry = p.cfg.DefaultRetryAfter
			}
			p.pushback(max(p.base.s.now(), at), at, retry)
			return
		}
		p.failed.Add(uint64(n))
	} else {
		p.succeeded.Add(uint64(n))
	}
	if p.conc.on {
		// Not before at, which may be the latest time the pace has seen
		// rather than the clock's (see Pacer): a latency is never negative.
		now := max(p.base.s.now(), at)
		if outcome == nil {
			p.observeLatency(at, now)
		}
		p.trySample(now)
	}
}

// trySample samples the window at now if a sample is due and nobody holds
// mu: it never waits for mu, so dispatch (which calls it with the clock
// reading it already made) never waits on the controller. The sample
// itself, once every 100ms, takes the base bucket's lock briefly and may
// log a cut. A sample skipped because mu was held is taken by the next
// dispatch or throttled outcome, or by Step.
func (p *Pacer) trySample(now int64) {
	if now < p.nextSample.Load() || !p.mu.TryLock() {
		return
	}
	rec := p.sample(now)
	p.mu.Unlock()
	p.log(rec)
}

// pushback handles a Throttled outcome at now of a job dispatched at ticks
// at, asking to retry after retry.
func (p *Pacer) pushback(now, at int64, retry time.Duration) {
	p.mu.Lock()
	rec := p.sample(now)
	if r := p.cut(now, at, ReasonPushback, beta); r != nil {
		rec = r
	}
	long := retry >= p.cfg.PauseAfter
	if long || p.storm() {
		until := now + int64(min(retry, maxPause))<<tickShift
		if until > p.pausedUntil {
			if now >= p.pausedUntil {
				p.pauses.Add(1)
				p.pauseStart.Store(now)
				// A new regime: outcomes of jobs sent before the pause
				// cut no further.
				p.cutAt.Store(now)
				why := "storm"
				if long {
					why = "long retry-after"
				}
				rec = p.record(now, slog.LevelInfo, "pacer: paused by pushback",
					slog.String("why", why), slog.Duration("retry_after", retry))
			}
			p.pausedUntil = until
			p.base.s.hold(until)
		}
	}
	p.mu.Unlock()
	p.log(rec)
}

// cut lowers the pace to depth × the rate the downstream took, for
// pushback of a job dispatched at ticks at, once per event: an
// outcome of a job dispatched before the last cut reports what that cut
// already answered. It returns the log record to emit, if any. It
// requires mu held.
func (p *Pacer) cut(now, at int64, why Reason, depth float64) *slog.Record {
	if at < p.cutAt.Load() {
		return nil
	}
	c := &p.cap
	pace := p.base.Leak() * p.factor
	if why == ReasonPushback && pace < c.wmax && p.throttledShare() < noiseShare {
		// Under the last known limit, and rare: a burst the downstream's
		// bucket could not take (dispatch jitter), not a lower capacity.
		// The job waits its retry-after; the pace holds.
		c.tolerated++
		return nil
	}
	// The pace the downstream took over the last second, or over its
	// recent part if higher (a pace that rose within the second). The
	// recent part alone would ratchet the pace down when a 429 comes
	// while the pace is still recovering.
	good, est1, ok := p.goodputOver(now, windowSlots*sampleTicks, 0)
	if rgood, rest, rok := p.goodputOver(now, recentTicks, recentDone); rok {
		good, est1, ok = max(good, rgood), max(est1, rest), true
	}
	var est float64
	if ok {
		est = min(est1, pace)
	} else {
		est = pace * p.cfg.Cut / beta
	}
	floor := p.floorPace()
	c.wmax = max(est, floor)
	c.from = max(depth*c.wmax, floor)
	c.limit = c.from
	c.cause = why
	c.probe = 0
	c.cuts++
	p.cutAt.Store(now)
	p.applyPace()
	if now-c.logAt < logEvery {
		c.unlogged++
		return nil
	}
	c.logAt = now
	attrs := []slog.Attr{
		slog.String("reason", string(why)),
		slog.Float64("from", round3(pace)), slog.Float64("to", round3(p.base.Leak()*p.factor)),
	}
	if ok {
		attrs = append(attrs, slog.Float64("good_rate", round3(good)))
	} else {
		attrs = append(attrs, slog.String("good_rate", "not measured yet: cut by Config.Cut"))
	}
	if c.unlogged > 0 {
		attrs = append(attrs, slog.Int("more_cuts", c.unlogged))
		c.unlogged = 0
	}
	return p.record(now, slog.LevelInfo, "pacer: pace lowered", attrs...)
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// record makes a log record for Config.Logger, or nil without one.
func (p *Pacer) record(now int64, level slog.Level, msg string, attrs ...slog.Attr) *slog.Record {
	if p.cfg.Logger == nil || !p.cfg.Logger.Enabled(context.Background(), level) {
		return nil
	}
	r := slog.NewRecord(p.base.s.epoch.Add(time.Duration(now>>tickShift)), level, msg, 0)
	r.AddAttrs(attrs...)
	return &r
}

// log emits r, outside mu.
func (p *Pacer) log(r *slog.Record) {
	if r != nil {
		_ = p.cfg.Logger.Handler().Handle(context.Background(), *r)
	}
}

// sample closes the current sample if it is due: it moves the window on,
// advances the probe curve, judges latency (the concurrency limit) and
// applies the pace. It returns a log record for a cut of the concurrency
// limit, if any. It requires mu held.
func (p *Pacer) sample(now int64) *slog.Record {
	if now < p.nextSample.Load() {
		return nil
	}
	c := &p.cap
	p.nextSample.Store(now + sampleTicks)
	done, thr := p.doneCount(), p.throttled.Load()
	active := p.activeTicks(c.lastAt, now)
	if now-c.lastAt > windowSlots*sampleTicks {
		// A long gap with no sample: idle, not a measure of the
		// downstream. Start the window afresh.
		c.win = [windowSlots]slot{}
	} else if active > 0 {
		c.head = (c.head + 1) % windowSlots
		c.win[c.head] = slot{done: done - c.lastDone, thr: thr - c.lastThr, ticks: active,
			paced: p.base.Leak() * p.factor * float64(active) / ticksPerSec}
	}
	c.lastAt, c.lastDone, c.lastThr = now, done, thr
	// The probe moves on by the sample's active time before latency is
	// judged: a cut below starts the curve afresh at now, and the time
	// that passed before it is no part of the curve.
	if !math.IsInf(c.limit, 1) {
		c.probe += active
		c.limit = p.probeCurve()
		if c.limit >= p.maxPace() {
			c.limit = math.Inf(1) // probed up to the ceiling: no limit known
		}
	}
	var rec *slog.Record
	if p.conc.on {
		rec = p.judgeConc(now)
	}
	p.applyPace()
	return rec
}

// activeTicks returns the ticks of [from, to) not paused. It requires mu
// held.
func (p *Pacer) activeTicks(from, to int64) int64 {
	ps, pe := p.pauseStart.Load(), p.pausedUntil
	overlap := max(0, min(to, pe)-max(from, ps))
	return max(0, to-from-overlap)
}

// probeCurve is the capacity limit after probe ticks since the last cut:
// back to the last known limit along a concave cubic in recoverSecs, then
// past it by a step that doubles every probeDoubleSecs. It requires mu
// held.
func (p *Pacer) probeCurve() float64 {
	c := &p.cap
	t := float64(c.probe) / ticksPerSec
	if t <= recoverSecs {
		u := 1 - t/recoverSecs
		return c.wmax - (c.wmax-c.from)*u*u*u
	}
	return c.wmax * (1 + probeStep*(math.Exp2((t-recoverSecs)/probeDoubleSecs)-1))
}

// applyPace sets the base bucket's factor so that the pace is the lowest
// of the ceiling, the backlog rule's Base × factor and the capacity limit,
// and not under Base × MinFactor. It requires mu held.
func (p *Pacer) applyPace() {
	base := p.base.Leak()
	pace := min(p.maxPace(), base*p.bfactor)
	limited := p.cap.limit < pace
	if limited {
		pace = max(p.cap.limit, p.floorPace())
	}
	if adv := p.advised(p.base.s.now()); adv < pace {
		// What the downstream advertises, spread over its window;
		// spendAdvice holds dispatch once none is left.
		pace, limited = max(adv, p.floorPace()), true
	}
	// Under the downstream's limit, no catch-up bursts after a late
	// wake: a burst the downstream cannot take is throttled.
	p.base.s.smooth.Store(limited)
	p.setFactor(pace / base)
}

// reason returns what sets the pace now. It requires mu held.
func (p *Pacer) reason() Reason {
	base := p.base.Leak()
	pace := min(p.maxPace(), base*p.bfactor)
	if _, binding := p.concLimit(); binding {
		return ReasonConcurrency
	}
	if adv := p.advised(p.base.s.now()); adv < min(p.cap.limit, pace) {
		return ReasonAdvertised
	}
	switch {
	case p.cap.limit < pace:
		return p.cap.cause
	case base*p.bfactor >= p.rate:
		return ReasonCeiling
	default:
		return ReasonBacklog
	}
}

// capacityEstimate is the downstream's estimated capacity for Stats: the
// good rate at the last cut, or the good rate now if higher; 0 while no
// limit is known. It requires mu held.
func (p *Pacer) capacityEstimate(now int64) float64 {
	if math.IsInf(p.cap.limit, 1) {
		return 0
	}
	g, _ := p.goodput(now)
	return max(p.cap.wmax, g)
}
