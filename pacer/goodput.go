package pacer

// goodput returns the good rate (jobs done per second) over the window and
// the current partial sample, and whether the window is long enough to
// trust. It requires mu held.
func (p *Pacer) goodput(now int64) (float64, bool) {
	g, _, ok := p.goodputOver(now, windowSlots*sampleTicks, 0)
	return g, ok
}

// goodputOver measures over the newest samples until they cover enough
// ticks and hold enoughDone jobs, or the window ends. It returns the good
// rate, and the pace the downstream took: the pace over the same time
// times the share of outcomes not throttled. The two differ when fewer
// jobs left than the pace allowed: a busy machine lost dispatches, or
// stalled its workers, or the queue had fewer jobs; the good rate then
// says little about the downstream, the share still does. It requires mu
// held.
func (p *Pacer) goodputOver(now, enough int64, enoughDone uint64) (good, pace float64, ok bool) {
	c := &p.cap
	done, thr := p.doneCount()-c.lastDone, p.throttled.Load()-c.lastThr
	ticks := p.activeTicks(c.lastAt, now)
	paced := p.base.Leak() * p.factor * float64(ticks) / ticksPerSec
	for i := 0; i < windowSlots && (ticks < enough || done < enoughDone); i++ {
		s := c.win[(c.head-i+windowSlots)%windowSlots]
		if s.ticks == 0 {
			break
		}
		done += s.done
		thr += s.thr
		ticks += s.ticks
		paced += s.paced
	}
	if ticks < minWindow {
		return 0, 0, false
	}
	good = float64(done) / (float64(ticks) / ticksPerSec)
	pace = good
	if done+thr > 0 {
		pace = paced / (float64(ticks) / ticksPerSec) * float64(done) / float64(done+thr)
	}
	return good, pace, true
}

// throttledShare is the share of throttled outcomes in the window. It
// requires mu held.
func (p *Pacer) throttledShare() float64 {
	c := &p.cap
	done, thr := p.doneCount()-c.lastDone, p.throttled.Load()-c.lastThr
	for i := 0; i < windowSlots; i++ {
		s := c.win[(c.head-i+windowSlots)%windowSlots]
		if s.ticks == 0 {
			break
		}
		done += s.done
		thr += s.thr
	}
	if thr == 0 {
		return 0
	}
	return float64(thr) / float64(thr+done)
}

// storm reports whether the window holds a storm of pushback: at least
// stormMin throttled outcomes and a share of at least StormShare. It
// requires mu held.
func (p *Pacer) storm() bool {
	c := &p.cap
	done, thr := p.doneCount()-c.lastDone, p.throttled.Load()-c.lastThr
	for i := 0; i < windowSlots; i++ {
		s := c.win[(c.head-i+windowSlots)%windowSlots]
		if s.ticks == 0 {
			break
		}
		done += s.done
		thr += s.thr
	}
	return thr >= stormMin && float64(thr) >= p.cfg.StormShare*float64(thr+done)
}
