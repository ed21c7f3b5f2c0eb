package lease

import (
	"context"
	"math"
	"time"
)

// The refiller: one goroutine per Bucket that makes every store call, so
// that Wait never blocks on the network.

type action int

const (
	actSleep  action = iota
	actFetch         // lease want tokens (want 0: a probe that only says hello)
	actReturn        // give the tail of the last lease back
)

func (b *Bucket) run() {
	defer close(b.done)
	for {
		b.mu.Lock()
		now := b.now()
		act, want, until := b.plan(now)
		rate := b.rate
		b.mu.Unlock()
		switch act {
		case actFetch:
			b.fetch(rate, want)
		case actReturn:
			b.giveBack(rate, false)
		case actSleep:
			var tc <-chan time.Time
			var t interface{ Stop() bool }
			if !math.IsInf(until, 1) {
				timer := b.clock.NewTimer(dur(until - now))
				t, tc = timer, timer.C()
			}
			select {
			case <-b.refill:
			case <-tc:
			case <-b.closed:
			}
			if t != nil {
				t.Stop()
			}
		}
		select {
		case <-b.closed:
			b.giveBack(rate, true)
			return
		default:
		}
	}
}

// plan decides the refiller's next step. It requires mu held.
func (b *Bucket) plan(now float64) (act action, want int, until float64) {
	b.settleMode(now)
	b.updateEst(now)
	if b.mode == ModeFallback {
		if now >= b.nextTry {
			// A probe that leases nothing: once the store answers,
			// leases go through the rejoining limit.
			return actFetch, 0, 0
		}
		return actSleep, 0, b.nextTry
	}
	b.expire(now)
	need := 0
	for _, w := range b.q {
		need += w.n - w.slots
	}
	until = math.Inf(1)
	last := math.Inf(-1)
	if len(b.segs) > 0 {
		last = b.segs[len(b.segs)-1].last()
	}
	if short := need - b.reserved(); short > 0 {
		// The waiters need more than is leased. Lease when the leased
		// slots run low, as a held worker prefetches (below), not at
		// once: a lease is at most LeaseTime's worth of an equal share
		// (size), and leasing again while the slots reach further than
		// lead would take the whole schedule ahead from the other
		// workers, who then get it a slot a call, with empty grants
		// between.
		if last-now >= b.lead {
			until = last - b.lead
		} else {
			if now < b.nextTry {
				return actSleep, 0, b.nextTry
			}
			want = b.size(now, short)
			if b.mode == ModeRejoining {
				// Lease no faster than the local share: take its
				// tokens now (fetch gives back what the store does not
				// grant).
				if want = b.gate.take(now, want); want == 0 {
					return actSleep, 0, b.gate.next(now)
				}
			}
			return actFetch, want, 0
		}
	}
	active := len(b.q) > 0 || now-b.lastDemand < b.lead
	if b.mode == ModeShared && active && now < b.busyUntil {
		// Held by the schedule: lease the next stretch before this one
		// runs out, so the slots keep coming on time.
		if last-now < b.lead {
			if now < b.nextTry {
				return actSleep, 0, b.nextTry
			}
			return actFetch, b.size(now, 0), 0
		}
		until = min(until, last-b.lead)
	}
	if len(b.q) == 0 && len(b.segs) > 0 && b.segs[len(b.segs)-1].end != "" {
		// Idle with leased slots not expired (still to come, or due
		// and put back by Refund): give them back once the demand has
		// been gone for a while.
		if !active {
			return actReturn, 0, 0
		}
		until = min(until, b.lastDemand+b.lead)
	}
	if b.mode == ModeRejoining {
		until = min(until, b.rejoinUntil)
	}
	return actSleep, 0, until
}

// updateEst folds the demand since the last estimate into est. It requires
// mu held.
func (b *Bucket) updateEst(now float64) {
	dt := now - b.estAt
	if dt <= 0 {
		return
	}
	a := 1 - math.Exp(-dt/b.lease)
	b.est = max(0, b.est+(b.demand*1e6/dt-b.est)*a)
	b.demand, b.estAt = 0, now
}

// size is how many tokens to lease: about LeaseTime's worth of the recent
// demand (twice that, and growing, while the worker is held by the
// schedule), at least short (what the waiters lack), and never more than
// LeaseTime's worth of an equal share of the rate. It requires mu held.
func (b *Bucket) size(now float64, short int) int {
	sec := b.lease / 1e6
	share := b.rate / float64(max(b.workers, 1))
	limit := share * sec
	var want float64
	switch {
	case b.mode == ModeRejoining:
		// Leases are held to the local share (see plan): half
		// LeaseTime's worth of it at most.
		limit = b.share() * sec / 2
		want = limit
	case now < b.busyUntil:
		want = 2 * b.est * sec
		if b.expiredOK {
			want = max(want, 2*float64(b.lastGrant))
		}
	default:
		want = b.est * sec / 2
	}
	return int(max(1, math.Ceil(min(max(want, float64(short)), limit))))
}

// fetch leases want tokens from the store (or, want 0, only checks in).
func (b *Bucket) fetch(rate float64, want int) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	t0 := b.now()
	r, err := b.take(ctx, rate, want)
	t1 := b.now()
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Calls++
	if err != nil {
		b.fail(t1, err)
		return
	}
	b.observe(r, t0, t1)
	if b.mode == ModeRejoining && r.K < want {
		b.gate.refund(t1, want-r.K)
	}
	if b.mode == ModeFallback {
		b.mode = ModeRejoining
		b.rejoinUntil = t1 + 2*float64(b.cfg.RetryInterval)/1e3
		b.gate.setRate(t1, b.share(), b.gateBurst())
		b.st.Rejoins++
		b.log.Info(b.cfg.Pkg+": "+b.cfg.Server+" is back; rejoining the fleet's shared limit",
			"key", b.cfg.Key, "after", b.clock.Now().Sub(b.since).Round(time.Millisecond), "workers", b.workers)
		b.wakeHead()
	}
	if r.K > 0 {
		cost := 1e6 / rate
		off := b.offsets.best()
		seg := segment{first: r.Z0 + cost - off, cost: cost, n: r.K, start: r.Start, end: r.Zero}
		if granted := r.Now - off; seg.first < granted {
			// The bucket's burst: slots that were due before the take.
			// They are usable from the take on, and late only from then.
			p := min(seg.n, int((granted-seg.first)/cost)+1)
			b.segs = append(b.segs, segment{first: granted, n: p, start: seg.start, end: seg.end})
			seg.n -= p
			seg.first += float64(p) * cost
			b.segs[len(b.segs)-1].end = seg.end + "#burst"
			seg.start = seg.end + "#burst"
		}
		if seg.n > 0 {
			b.segs = append(b.segs, seg)
		} else {
			b.segs[len(b.segs)-1].end = seg.end
		}
		b.st.Leases++
		b.st.Granted += uint64(r.K)
		b.lastGrant, b.expiredOK = r.K, true
		b.wakeHead()
	} else if want > 0 {
		// The schedule is taken up to LeaseTime×2 ahead. Ask again when
		// the lease asked for (or lead's worth of the schedule) has come
		// within reach, not when the next slot has: a slot at a time,
		// raced for by every worker held back, costs calls, not rate.
		cost := 1e6 / rate
		b.nextTry = t1 + max(r.Retry+min(float64(want-1)*cost, b.lead), 50)
	}
}

// observe takes what every reply tells: the store's time and the fleet's size.
// It requires mu held.
func (b *Bucket) observe(r Reply, t0, t1 float64) {
	b.offsets.add(r.Now-(t0+t1)/2, t1-t0)
	if r.Workers > 0 {
		b.workers = r.Workers
	}
	b.lastErr = nil
}

// fail records a failed call and, the first time, falls back to the local
// share. It requires mu held.
func (b *Bucket) fail(now float64, err error) {
	b.st.Errors++
	b.lastErr = err
	b.nextTry = now + float64(b.cfg.RetryInterval)/1e3
	if b.mode == ModeFallback {
		return
	}
	b.mode = ModeFallback
	b.st.Fallbacks++
	b.since = b.clock.Now()
	b.gate.reset(now, b.share(), b.gateBurst())
	// Leased slots are dropped: the worker now paces on its share alone.
	if n := b.reserved(); n > 0 {
		b.st.Expired += uint64(n)
		b.segs = nil
	}
	b.given = nil
	level, what := "unreachable", b.cfg.Pkg+": "+b.cfg.Server+" unreachable; falling back to this worker's share of the limit"
	if b.refused(err) {
		level, what = "refused", b.cfg.Pkg+": "+b.cfg.Server+" refuses the bucket; falling back to this worker's share of the limit"
	}
	args := []any{"key", b.cfg.Key, "share", b.share(), "workers", max(b.cfg.ExpectedWorkers, b.workers, 1), "retry", b.cfg.RetryInterval, "err", err}
	if level == "refused" {
		b.log.Error(what, args...)
	} else {
		b.log.Warn(what, args...)
	}
	b.wakeHead()
}

// giveBack returns the unused slots at the end of this worker's leases to
// the store while they are still the tail of the schedule; leaving also takes
// this worker out of the count of workers.
func (b *Bucket) giveBack(rate float64, leaving bool) {
	b.mu.Lock()
	if b.mode == ModeFallback {
		b.mu.Unlock()
		return
	}
	var back []segment
	m := 0
	if leaving || len(b.q) == 0 {
		i := b.tail()
		back = append(back, b.segs[i:]...)
		b.segs = b.segs[:i]
		for _, s := range back {
			m += s.n
		}
	}
	end := ""
	if len(back) > 0 {
		end = back[len(back)-1].end
	}
	b.mu.Unlock()
	if m == 0 && !leaving {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	t0 := b.now()
	r, err := b.store.Return(ctx, b.args(rate), end, m, leaving)
	t1 := b.now()
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Calls++
	switch {
	case err != nil:
		b.st.Errors++
		b.lastErr = err
	default:
		b.observe(r, t0, t1)
	}
	if err == nil && r.K == 1 {
		b.st.Returned += uint64(m)
		return
	}
	if len(back) > 0 && !leaving {
		// Not the tail any more (someone leased after them): the slots
		// are still ours; keep them, and do not try again.
		back[len(back)-1].end = ""
		b.segs = append(b.segs, back...)
		b.wakeHead()
	}
}
