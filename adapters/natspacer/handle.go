package natspacer

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/pacer"
)

// worker runs the handler on each job sent on work, until work is closed.
func (c *Consumption) worker() {
	defer c.workers.Done()
	for j := range c.work {
		// A start makes room in the window: wake a gatherer it holds
		// back, each time winKick more messages have left the buffer.
		if c.winWaiters.Load() > 0 && int64(len(c.work))%c.winKick.Load() == 0 {
			kick(c.kickGather)
		}
		c.sampleWait(j)
		c.handle(j)
	}
}

// handle runs the handler on j's message, unless the consumption was
// cancelled (ctx) or stopped (Stop) first, and settles the message and
// its permit with the outcome.
func (c *Consumption) handle(j *job) {
	var err error
	started := true
	if cerr := c.ctx.Err(); cerr != nil {
		err, started = cerr, false // consumption cancelled: do not start it
	} else if c.dropping.Load() {
		err, started = errStopped, false
	} else {
		err = c.call(j.msg)
		if err != nil && c.ctx.Err() == nil && pacer.Unavailable(err) {
			if _, throttled := pacer.IsThrottled(err); !throttled {
				err = pacer.Throttle(0, err) // the downstream is down or drowning: pushback
			}
		}
	}
	if c.cfg.outcomeHook != nil {
		c.cfg.outcomeHook()
	}

	j.mu.Lock() // no InProgress from touch after this
	j.done.Store(true)
	var aerr error
	if err == nil { // the common case first: IsThrottled allocates
		aerr = j.msg.Ack()
		c.acked.Add(1)
	} else if !started {
		aerr = j.msg.Nak() // redeliver at once, to whoever consumes next
		c.canceled.Add(1)
	} else if retry, throttled := pacer.IsThrottled(err); throttled {
		if retry <= 0 {
			retry = c.cfg.retryAfter
		}
		aerr = j.msg.NakWithDelay(retry)
		c.throttled.Add(1)
	} else if errors.Is(err, ErrTerminate) {
		aerr = j.msg.Term()
		c.terminated.Add(1)
	} else if c.ctx.Err() != nil && errors.Is(err, c.ctx.Err()) {
		aerr = j.msg.Nak() // redeliver at once, to whoever consumes next
		c.canceled.Add(1)
	} else {
		delivered := uint64(1)
		if md, merr := j.msg.Metadata(); merr == nil {
			delivered = md.NumDelivered
		}
		aerr = j.msg.NakWithDelay(c.cfg.backoff(delivered))
		c.nakked.Add(1)
	}
	j.mu.Unlock()
	if aerr != nil && !errors.Is(aerr, jetstream.ErrMsgAlreadyAckd) {
		c.ackErrors.Add(1)
		c.log.Warn("natspacer: acknowledging a message failed; the server redelivers it after AckWait", "err", aerr)
	}
	if started {
		j.pm.Done(err)
	} else {
		j.pm.Cancel() // it never ran: no outcome, the permit goes back
		c.unstarted.Add(1)
	}

	c.release(j.b)
	// Wake a gatherer each kickEvery finished messages, not for every
	// one: at high rates a wake-up per message costs more than the
	// message. (A gatherer that waits for the pace needs no wake-up.)
	if c.busy.Add(-1)%int64(c.kickEvery) == 0 {
		kick(c.kickGather)
	}
}

// errStopped is the outcome of a message that Stop kept from starting.
var errStopped = errors.New("natspacer: consumption stopped")

// call runs the handler, turning a panic into an error.
func (c *Consumption) call(msg jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("natspacer: handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return c.h.Handle(c.ctx, msg)
}
