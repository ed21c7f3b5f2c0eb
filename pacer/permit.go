package pacer

import "sync/atomic"

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
	p    *Pacer       // likewise; nil for a Keyed permit
	k    *keyState    // the key of a Keyed permit; nil for a Pacer's
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
	if pm != nil && pm.k != nil {
		pm.at.Store(max(pm.k.kp.global.now(), pm.at.Load()))
		return
	}
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
func (p *Pacer) newPermit() *Permit { return nextPermit(&p.slab) }

// nextPermit returns the next fresh permit of the slabs at sp.
func nextPermit(sp *atomic.Pointer[permitSlab]) *Permit {
	if s := sp.Load(); s != nil {
		if i := s.next.Add(1) - 1; i < permitSlabSize {
			return &s.ps[i]
		}
	}
	return newSlab(sp)
}

// newSlab is nextPermit's slow path, once a slab: it installs a fresh
// slab and returns its first permit, or a permit of the slab another
// caller installed first.
func newSlab(sp *atomic.Pointer[permitSlab]) *Permit {
	for {
		s := sp.Load()
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
		if sp.CompareAndSwap(s, ns) {
			return &ns.ps[0]
		}
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
	if pm == nil {
		return
	}
	if pm.k != nil {
		pm.k.done(pm, outcome)
		return
	}
	if pm.p == nil {
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
	if pm == nil {
		return
	}
	if pm.k != nil {
		pm.k.cancel(pm, int(pm.finish()))
		return
	}
	if pm.p == nil {
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
	if pm == nil || pm.p == nil && pm.k == nil {
		return
	}
	for {
		used := pm.used.Load()
		if k < 1 || k > int(pm.n-used) {
			if pm.k != nil {
				pm.k.kp.misuse.Add(1)
			} else {
				pm.p.misuse.Add(1)
			}
			return
		}
		if pm.used.CompareAndSwap(used, used+int32(k)) {
			if pm.k != nil {
				pm.k.cancel(pm, k)
			} else {
				pm.p.giveBack(k)
			}
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
