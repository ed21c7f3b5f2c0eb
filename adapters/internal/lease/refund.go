package lease

import "math"

// abandon removes a cancelled waiter, giving back what it had taken. It
// requires mu held.
func (b *Bucket) abandon(w *waiter) {
	b.dequeue(w)
	// The slots it took are the earliest leased: back in front, each
	// run as it was (latest first, so they end up in order).
	for i := len(w.taken) - 1; i >= 0; i-- {
		b.restore(w.taken[i])
	}
	if w.gate > 0 {
		b.gate.refund(b.now(), w.gate)
	}
	b.demand -= float64(w.n) // net: it may have been estimated since
}

// handedOut records the runs of slots a Wait has just handed out, so
// that Refund can put them back; it forgets those too old to be used
// again. It requires mu held.
func (b *Bucket) handedOut(now float64, runs []segment) {
	for _, r := range runs {
		b.given = appendRun(b.given, r)
	}
	i := 0
	for i < len(b.given) && (b.given[i].last() < now-b.slack || len(b.given)-i > maxGiven) {
		i++
	}
	if i > 0 {
		b.given = append(b.given[:0], b.given[i:]...)
	}
}

// restore puts the run r of slots, taken from b.segs and not used, back
// in front of b.segs. It keeps the run returnable to the store (see tail)
// when it is exactly what it was before it was taken: merged into the
// run it was cut from, or alone as the end of its take. It requires mu
// held.
func (b *Bucket) restore(r segment) {
	if r.n <= 0 {
		return
	}
	if len(b.q) > 0 && b.q[0].slots > 0 {
		// The head waiter holds slots taken after r: r is not
		// contiguous with b.segs in the schedule, and may not go back.
		r.start, r.end = "", ""
	} else if len(b.segs) > 0 {
		s := &b.segs[0]
		if s.start == r.start && s.end == r.end && s.cost == r.cost && math.Abs(r.first+float64(r.n)*r.cost-s.first) < 1e-6 {
			s.first, s.n = r.first, s.n+r.n
			return
		}
		if r.end != s.start {
			r.end = ""
		}
	}
	b.segs = append([]segment{r}, b.segs...)
}

// Refund gives back n tokens that Waits handed out for jobs that never
// ran; pacer.Permit.Cancel and CancelN call it (see pacer.Refunder). The
// slots handed out last are put back in front of the leased slots, each
// at its own due time, so the next Wait gets them, and an idle or closing
// worker gives them back to the store with the rest of its leases. A slot
// refunded more than LeaseTime after its due time is lost (counted in
// Stats.Expired), as any slot not used in time: capacity lost, never
// added. In fallback the tokens go back to the local share. Refund never
// blocks and is safe for concurrent use; n < 1 does nothing.
func (b *Bucket) Refund(n int) {
	if n < 1 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.settleMode(now)
	b.st.Dispatched -= min(uint64(n), b.st.Dispatched)
	// The tokens were not needed: they come off the demand (net, so
	// even when it was estimated since), the worker is not held by the
	// schedule (the next waiter that is says so again), and the next
	// lease does not grow.
	b.demand -= float64(n)
	b.busyUntil = min(b.busyUntil, now)
	b.expiredOK = false
	if b.mode == ModeFallback {
		b.gate.refund(now, n)
		b.wakeHead()
		return
	}
	left := n
	for left > 0 && len(b.given) > 0 {
		g := &b.given[len(b.given)-1]
		k := min(left, g.n)
		g.n -= k
		b.restore(segment{first: g.first + float64(g.n)*g.cost, cost: g.cost, n: k, start: g.start, end: g.end})
		if g.n == 0 {
			b.given = b.given[:len(b.given)-1]
		}
		left -= k
	}
	b.st.Expired += uint64(left) // handed out too long ago (or in a fallback): not ours to use again
	b.expire(now)
	b.wakeHead()
	kick(b.refill) // idle with slots again: the refiller may give them back
}
