package pacer

import (
	"context"
	"math"
	"sync"
	"time"
)

// fairQueue is where a Keyed's callers wait: each key's callers in FIFO
// order, and the keys in start-time fair order. A key with callers is in
// one of two heaps: ready (its own pace lets its first caller start now),
// ordered by start tag, or later, ordered by the instant its own pace
// lets it start. One goroutine, started with the first waiter and gone
// with the last, hands out permits: the ready key of lowest tag gets the
// next one the worker's ceiling gives.
type fairQueue struct {
	mu      sync.Mutex // guards every field below, and the queue fields of keyState
	vtime   float64    // V: the start tag of the last job dispatched by the queue
	ready   keyHeap
	later   keyHeap
	running bool          // the dispatcher runs
	busy    int64         // ticks at which the queue last became non-empty
	kick    chan struct{} // buffered 1: the dispatcher looks again
}

const (
	inNone uint8 = iota
	inReady
	inLater
)

type keyWaiter struct {
	n  int
	at int64         // ticks at which it began to wait
	pm *Permit       // set by the dispatcher under fq.mu
	ch chan struct{} // closed once pm is set
}

// wake tells the dispatcher to look again. It requires fq.mu held.
func (fq *fairQueue) wake() {
	select {
	case fq.kick <- struct{}{}:
	default:
	}
}

// wait queues a caller for n jobs of ks and waits for its permit.
func (kp *Keyed) wait(ctx context.Context, ks *keyState, n int) (*Permit, error) {
	fq := &kp.fq
	now := kp.global.now()
	w := &keyWaiter{n: n, at: now, ch: make(chan struct{})}
	fq.mu.Lock()
	if kp.queued.Add(1) == 1 {
		fq.busy = max(now, kp.global.last.Load())
	}
	ks.waiting.Add(1)
	ks.q = append(ks.q, w)
	if len(ks.q) == 1 {
		kp.place(ks, now)
	}
	if !fq.running {
		fq.running = true
		go kp.dispatch()
	} else {
		fq.wake()
	}
	fq.mu.Unlock()
	var err error
	select {
	case <-w.ch:
		return w.pm, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-kp.global.closed:
		err = ErrClosed
	}
	fq.mu.Lock()
	pm := w.pm
	if pm == nil {
		kp.unqueue(ks, w, now)
	}
	fq.mu.Unlock()
	if pm != nil { // granted as we gave up
		pm.Cancel()
	}
	return nil, err
}

// unqueue takes w, which gave up, out of ks's queue. It requires fq.mu
// held.
func (kp *Keyed) unqueue(ks *keyState, w *keyWaiter, now int64) {
	for i, x := range ks.q {
		if x != w {
			continue
		}
		copy(ks.q[i:], ks.q[i+1:])
		ks.q[len(ks.q)-1] = nil
		ks.q = ks.q[:len(ks.q)-1]
		ks.waiting.Add(-1)
		kp.queued.Add(-1)
		if i == 0 {
			kp.fq.remove(ks)
			if len(ks.q) > 0 {
				kp.place(ks, now)
			}
		}
		kp.fq.wake()
		return
	}
}

// place puts ks, whose queue is not empty and which is in no heap, in
// ready or later. It requires fq.mu held.
func (kp *Keyed) place(ks *keyState, now int64) {
	fq := &kp.fq
	due := ks.dueAt(now, ks.q[0].n)
	ks.due = due
	if due > now {
		fq.later.push(ks, inLater)
		return
	}
	ks.tag = max(fq.vtime, ks.finish)
	fq.ready.push(ks, inReady)
}

// remove takes ks out of the heap it is in. It requires fq.mu held.
func (fq *fairQueue) remove(ks *keyState) {
	switch ks.where {
	case inReady:
		fq.ready.remove(ks)
	case inLater:
		fq.later.remove(ks)
	}
}

// dispatch hands out permits while callers wait.
func (kp *Keyed) dispatch() {
	fq := &kp.fq
	for {
		fq.mu.Lock()
		if kp.queued.Load() == 0 || kp.global.isClosed() {
			fq.running = false
			fq.mu.Unlock()
			return
		}
		now := kp.global.now()
		next := kp.serve(now)
		fq.mu.Unlock()
		d := time.Hour
		if next < math.MaxInt64 {
			d = time.Duration((next - now + ticksPerNano - 1) >> tickShift)
		}
		t := kp.global.clock.NewTimer(d)
		select {
		case <-t.C():
		case <-fq.kick:
			t.Stop()
		case <-kp.global.closed:
			t.Stop()
		}
	}
}

// serve hands out every permit due at now, lowest tag first, and returns
// the instant it has more to hand out. It requires fq.mu held.
func (kp *Keyed) serve(now int64) int64 {
	fq := &kp.fq
	for {
		for fq.later.len() > 0 && fq.later.min().due <= now {
			ks := fq.later.pop()
			ks.tag = max(fq.vtime, ks.finish)
			fq.ready.push(ks, inReady)
		}
		if fq.ready.len() == 0 {
			break
		}
		ks := fq.ready.min()
		w := ks.q[0]
		f := float64(w.n)
		// While callers wait the ceiling runs on its schedule from the
		// start of the busy period, as a Pacer's does: a dispatcher
		// woken late hands out what fell due meanwhile.
		from := fq.busy - kp.global.cfg.Load().full
		if due := kp.global.dueFrom(now, f, from); due > now {
			return min(due, fq.laterDue())
		}
		// A key not held by a learned limit takes on its schedule from
		// the instant it was due, however late the queue serves it;
		// under a limit, smoothly (see sched.smooth).
		kfrom := int64(math.MaxInt64)
		if ks.nextEval.Load() == math.MaxInt64 {
			kfrom = ks.due - int64(w.n)*ks.cost.Load()
		}
		if !ks.takeFrom(now, w.n, kfrom) { // its pace changed since: not ready yet
			fq.ready.pop()
			kp.place(ks, now)
			continue
		}
		_, at, ok := kp.global.takeFrom(now, f, from)
		if !ok {
			ks.refund(now, w.n)
			continue
		}
		fq.ready.pop()
		fq.vtime = ks.tag
		ks.finish = ks.tag + f/ks.weight
		copy(ks.q, ks.q[1:])
		ks.q[len(ks.q)-1] = nil
		ks.q = ks.q[:len(ks.q)-1]
		ks.waiting.Add(-1)
		kp.queued.Add(-1)
		wt := max(0, at-w.at)
		ks.waited.Add(1)
		ks.waitSum.Add(wt)
		if wt > ks.waitMax.Load() {
			ks.waitMax.Store(wt)
		}
		w.pm = kp.grant(ks, w.n, at)
		close(w.ch)
		if len(ks.q) > 0 {
			kp.place(ks, now)
		}
	}
	return fq.laterDue()
}

func (fq *fairQueue) laterDue() int64 {
	if fq.later.len() == 0 {
		return math.MaxInt64
	}
	return fq.later.min().due
}

// keyHeap is a binary heap of keys: by start tag (ready) or by due
// instant (later).
type keyHeap struct{ ks []*keyState }

func (h *keyHeap) len() int           { return len(h.ks) }
func (h *keyHeap) min() *keyState     { return h.ks[0] }
func (h *keyHeap) less(i, j int) bool { return h.key(i) < h.key(j) }

func (h *keyHeap) key(i int) float64 {
	ks := h.ks[i]
	if ks.where == inLater {
		return float64(ks.due)
	}
	return ks.tag
}

func (h *keyHeap) swap(i, j int) {
	h.ks[i], h.ks[j] = h.ks[j], h.ks[i]
	h.ks[i].hidx, h.ks[j].hidx = int32(i), int32(j)
}

func (h *keyHeap) push(ks *keyState, where uint8) {
	ks.where, ks.hidx = where, int32(len(h.ks))
	h.ks = append(h.ks, ks)
	h.up(len(h.ks) - 1)
}

func (h *keyHeap) pop() *keyState {
	ks := h.ks[0]
	h.remove(ks)
	return ks
}

func (h *keyHeap) remove(ks *keyState) {
	i, last := int(ks.hidx), len(h.ks)-1
	if i != last {
		h.swap(i, last)
	}
	h.ks[last] = nil
	h.ks = h.ks[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
	ks.where, ks.hidx = inNone, -1
}

func (h *keyHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *keyHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h.ks) {
			return
		}
		m := l
		if r := l + 1; r < len(h.ks) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}
