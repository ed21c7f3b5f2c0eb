package natspacer

import (
	"fmt"

	"github.com/jobpacer/pacer/pacer"
)

// gatherers is how many goroutines wait in Acquire at once when more than
// one permit is wanted. The pacer runs its schedule on, uncapped, while
// callers queue (a waiter woken late takes what fell due meanwhile); a
// caller that comes back after the queue emptied finds a bucket capped at
// Burst. With two gatherers one of them is always waiting while the other
// hands its permit over, however busy the machine.
const gatherers = 2

// wanted returns how many more permits are wanted now: the in-flight cap
// less what is held, the room left in the window, and no more than the
// consumer has pending (at least one, for the long poll that waits for
// new messages). It requires mu held.
func (c *Consumption) wanted() int {
	if c.stopping {
		return 0
	}
	held := len(c.pool) + c.out + c.gathering
	free := c.capacity - held - int(c.busy.Load())
	return max(0, min(free, c.windowRoom(), int(max(1, c.pendingEst))-held))
}

// gather acquires permits one at a time while they are wanted and puts
// them in the pool. When permits are there at once (a high or unlimited
// pace) it reserves and acquires a run of them (TryAcquire, which costs
// less than Acquire) and hands them over together; when the next one is
// not there yet, it hands over what it has before it waits in Acquire.
func (c *Consumption) gather() {
	defer c.loops.Done()
	var got []*pacer.Permit
	for {
		c.mu.Lock()
		c.waitWanted()
		if c.stopping {
			c.mu.Unlock()
			kick(c.kickGather) // pass the stop on to the other gatherer
			return
		}
		n := 1
		if w := c.wanted(); w > 1 && c.p.EstimateWait(1) <= 0 {
			n = min(w, c.cfg.maxBatch)
		}
		c.gathering += n
		others := c.wanted() > 0
		c.mu.Unlock()
		if others {
			kick(c.kickGather) // the other gatherer may wait in Acquire too
		}
		var err error
		if got, err = c.acquireRun(got[:0], n); err != nil {
			if c.ctx.Err() != nil {
				c.stop(nil) // ctx ended: a stop, not a failure
			} else {
				c.stop(fmt.Errorf("natspacer: acquiring a permit: %w", err)) // no-op if already stopping
			}
			return
		}
	}
}

// waitWanted waits, with c.mu held (released while it sleeps), until a
// permit is wanted and the gatherers hold fewer than capacity, or the
// consumption stops.
func (c *Consumption) waitWanted() {
	held := false // by the window alone
	for !c.stopping && (c.wanted() == 0 || c.gathering >= c.capacity) {
		binds := c.windowBinds()
		newly := binds && !held
		if newly {
			c.winWaiters.Add(1)
		} else if !binds && held {
			c.winWaiters.Add(-1)
		}
		held = binds
		c.mu.Unlock()
		if newly {
			kick(c.kickFetch) // no more permits come: fetch what the pool holds
		}
		select {
		case <-c.kickGather:
		case <-c.stopCh:
		}
		c.mu.Lock()
	}
	if held {
		c.winWaiters.Add(-1)
		// Let go with a permit due and no message waiting for a
		// handler: the pace and the handlers waited on the window.
		if len(c.work) == 0 && !c.stopping && c.p.EstimateWait(1) <= 0 {
			c.starved = true
		}
	}
}

// acquireRun acquires the n permits reserved (in c.gathering), with
// TryAcquire while they are there at once, handing over what it has got
// before it waits in Acquire, and hands them all to the pool. got is a
// buffer it reuses and returns.
func (c *Consumption) acquireRun(got []*pacer.Permit, n int) ([]*pacer.Permit, error) {
	var err error
	reserved := n
	for i := 0; i < n; i++ {
		pm, ok := c.p.TryAcquire(1)
		if !ok && len(got) > 0 {
			// The rest will take a while: hand these over now, and
			// go on only while the window still has room for them.
			rest := n - i
			kept := c.hand(got, len(got), rest)
			reserved -= len(got) + rest - kept
			got = got[:0]
			if kept == 0 {
				break
			}
			n = i + kept
		}
		if !ok {
			if pm, err = c.p.Acquire(c.gctx, 1); err != nil {
				break
			}
		}
		got = append(got, pm)
	}
	c.hand(got, reserved, 0)
	return got, err
}

// hand puts permits into the pool and ends the reservation of reserved
// permits (len(pms) of which were got). Of rest more permits reserved, it
// keeps as many as the window has room for (it may have shrunk since) and
// returns that number; it ends the reservation of the others.
func (c *Consumption) hand(pms []*pacer.Permit, reserved, rest int) (kept int) {
	c.mu.Lock()
	c.gathering -= reserved
	if rest > 0 {
		// The pms just moved from gathering to pool: the room is the same.
		kept = max(0, min(rest, rest+c.windowRoom()))
		c.gathering -= rest - kept
	}
	if len(pms) > 0 {
		if len(c.pool) == 0 {
			c.poolSince = c.clock.Now()
		}
		c.pool = append(c.pool, pms...)
	}
	n := len(c.pool)
	c.mu.Unlock()
	if len(pms) > 0 && (n == len(pms) || n >= c.cfg.maxBatch) {
		kick(c.kickFetch)
	}
	return kept
}
