package natspacer

import (
	"time"
)

// The window is how many messages the consumption lets run ahead of its
// handlers: permits being acquired, in the pool or asked for by a Fetch,
// and messages received that wait for a handler. It sizes itself, within
// the in-flight cap (MaxInFlight and MaxAckPending):
//
//   - it starts at windowMin;
//   - it doubles after a Fetch that came back full while the pace was
//     starved: a gatherer held back by the window found, when let go, a
//     permit already due and no message waiting for a handler, so both the
//     pace and a handler waited on the window;
//   - it shrinks by a quarter when a message waited for a handler longer
//     than two fetch round trips (at least shrinkAfter): it was fetched
//     earlier than it needed to be; and to windowMin when one waited a
//     quarter of AckWait;
//   - it is at most what the pace gives in paceRounds rounds of
//     BatchLinger and fetch round trip (at most maxPaceRTT), plus
//     windowMin: more would only let permits pile up while a fetch
//     stalls, to arrive as a burst of messages (at 2,000/s: 26 with 1ms
//     round trips, 98 at most), but at least Concurrency (as many
//     handlers may start at once anyway);
//   - while messages wait for a handler, it is at most what the handlers
//     start in a quarter of AckWait (at least windowMin), at the rate
//     measured over the last rateEvery or more: a message fetched ahead
//     starts well before its AckWait.
//
// A window just large enough keeps the pace busy for a fetch round trip or
// two: at an unlimited pace it grows until the handlers, not the round
// trips, bound the throughput; at a low pace with slow handlers it stays a
// few messages.
const (
	windowMin   = gatherers              // one permit per gatherer
	shrinkAfter = 5 * time.Millisecond   // the least buffer wait that shrinks the window
	rateEvery   = 100 * time.Millisecond // the handler start rate's measuring period
	rttWeight   = 8                      // the round trip is an EWMA of weight 1/rttWeight
	paceRounds  = 4                      // the window holds at most the pace over this many linger + round trips
	maxPaceRTT  = 10 * time.Millisecond  // of which a round trip counts for at most this
)

// windowRoom returns how many more messages the window lets run ahead now,
// which may be negative. It requires mu held.
func (c *Consumption) windowRoom() int {
	return c.window - len(c.pool) - c.out - c.gathering - len(c.work)
}

// windowBinds reports whether the window, and no other limit, keeps the
// gatherers from acquiring a permit now. It requires mu held.
func (c *Consumption) windowBinds() bool {
	held := len(c.pool) + c.out + c.gathering
	return !c.stopping && c.windowRoom() <= 0 &&
		c.capacity-held-int(c.busy.Load()) > 0 && max(1, c.pendingEst)-int64(held) > 0
}

// sampleWait records how long a message waited for a handler, if its
// receipt was stamped. It does not require mu.
func (c *Consumption) sampleWait(j *job) {
	if j.recv == 0 {
		return
	}
	w := int64(c.since() - (j.recv - 1))
	for {
		old := c.maxWait.Load()
		if w <= old || c.maxWait.CompareAndSwap(old, w) {
			return
		}
	}
}

// since returns the time since the consumption started, on its clock.
func (c *Consumption) since() time.Duration { return c.clock.Now().Sub(c.start) }

// adjust resizes the window after a Fetch: full says it brought every
// message it asked for, rtt (if > 0) how long the last of them took, pace
// is the pacer's pace now. It requires mu held.
func (c *Consumption) adjust(full bool, rtt time.Duration, now time.Duration, pace float64) {
	if rtt > 0 {
		if c.rtt == 0 {
			c.rtt = rtt
		} else {
			c.rtt += (rtt - c.rtt) / rttWeight
		}
	}
	w := c.window
	wait := time.Duration(c.maxWait.Swap(0))
	switch {
	case full && c.starved:
		w = min(2*w, c.capacity)
	case wait >= c.ackWait/4:
		w = windowMin
	case wait > max(2*c.rtt, shrinkAfter):
		w = max(windowMin, w-max(1, w/4))
	}
	c.starved = false

	if dt := now - c.rateAt; dt >= rateEvery {
		n := c.finished()
		c.startRate = float64(n-c.rateN) / dt.Seconds()
		c.rateAt, c.rateN, c.rateKnown = now, n, true
	}
	// Messages wait, and the handlers finished few or none lately: hold
	// only what they start in AckWait/4 (after idle time the rate is low,
	// and the window grows again once the handlers show they keep up).
	if len(c.work) > 0 && c.rateKnown {
		w = min(w, max(windowMin, int(c.startRate*c.ackWait.Seconds()/4)))
	}
	// Enough for the pace over paceRounds rounds of linger and round
	// trip: more would only let permits pile up while a fetch stalls, and
	// arrive as a burst of messages when it comes back.
	// A round trip longer than maxPaceRTT is a stall: at a paced rate the
	// window does not grow to bridge it (a permit lost to a stall is
	// better than a burst to the downstream after it).
	// Concurrency messages ahead stay allowed: as many handlers may start
	// at once anyway, and they bridge a stall of the fetch path as long as
	// they last.
	need := windowMin + paceRounds*pace*(c.cfg.linger+min(c.rtt, maxPaceRTT)).Seconds()
	if need = max(need, float64(c.cfg.concurrency)); need < float64(w) {
		w = max(windowMin, int(need))
	}
	c.window = w
	c.winKick.Store(int64(max(1, w/8)))
}

// finished returns the messages whose outcome was sent.
func (c *Consumption) finished() uint64 {
	return c.acked.Load() + c.nakked.Load() + c.throttled.Load() + c.terminated.Load() + c.canceled.Load()
}
