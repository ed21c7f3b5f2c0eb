package natspacer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

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
	started, pmDone := true, false
	if cerr := c.ctx.Err(); cerr != nil {
		err, started = cerr, false // consumption cancelled: do not start it
	} else if c.dropping.Load() {
		err, started = errStopped, false
	} else {
		j.pm.Start() // its latency runs from here, not from before the Fetch
		err = c.run(j.msg)
		for started && c.lastDeliveries(j, err) {
			// A nak would spend a delivery the consumer's MaxDeliver
			// cannot spare: keep the message and try it again here.
			started, err = c.retryInPlace(j, err)
			pmDone = true
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
		c.lastNak(j, "stopped")
		aerr = j.msg.Nak() // redeliver at once, to whoever consumes next
		c.canceled.Add(1)
	} else if retry, throttled := pacer.IsThrottled(err); throttled {
		if retry <= 0 {
			retry = c.retryAfter()
		}
		c.lastNak(j, "throttled while stopping")
		aerr = j.msg.NakWithDelay(retry)
		c.throttled.Add(1)
	} else if errors.Is(err, ErrTerminate) {
		aerr = j.msg.Term()
		c.terminated.Add(1)
	} else if c.ctx.Err() != nil && errors.Is(err, c.ctx.Err()) {
		c.lastNak(j, "stopped")
		aerr = j.msg.Nak() // redeliver at once, to whoever consumes next
		c.canceled.Add(1)
	} else {
		delivered := uint64(1)
		if md, merr := j.msg.Metadata(); merr == nil {
			delivered = md.NumDelivered
		}
		c.lastNak(j, "failed")
		aerr = j.msg.NakWithDelay(c.cfg.backoff(delivered))
		c.nakked.Add(1)
	}
	j.mu.Unlock()
	if aerr != nil && !errors.Is(aerr, jetstream.ErrMsgAlreadyAckd) {
		c.ackErrors.Add(1)
		c.log.Warn("natspacer: acknowledging a message failed; the server redelivers it after AckWait", "err", aerr)
	}
	switch {
	case pmDone && !started: // its last run was Done; the retry never got a permit or never ran
	case started:
		j.pm.Done(err)
	default:
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

// run runs the handler on msg; an outcome that says the downstream is
// down or drowning is pushback.
func (c *Consumption) run(msg jetstream.Msg) error {
	err := c.call(msg)
	if err != nil && c.ctx.Err() == nil && pacer.Unavailable(err) {
		if _, throttled := pacer.IsThrottled(err); !throttled {
			err = pacer.Throttle(0, err) // the downstream is down or drowning: pushback
		}
	}
	return err
}

// lastDeliveries reports whether err is a throttled outcome that a nak
// must not answer, because the consumer's MaxDeliver leaves the message
// at most one more delivery: that one is kept for a fault (a crash
// before the ack, which the server answers by redelivering after
// AckWait), so that throttling alone never uses up a job's deliveries.
func (c *Consumption) lastDeliveries(j *job, err error) bool {
	if c.maxDeliver <= 0 || err == nil || c.ctx.Err() != nil {
		return false
	}
	if _, throttled := pacer.IsThrottled(err); !throttled {
		return false
	}
	md, merr := j.msg.Metadata()
	return merr == nil && md.NumDelivered+1 >= uint64(c.maxDeliver)
}

// lastNak counts and logs a nak of j's message on its last delivery
// (MaxDeliver): the server will not deliver it again. Every nak path
// calls it: a failure, a throttle or a stop there ends the job.
func (c *Consumption) lastNak(j *job, why string) {
	if c.maxDeliver <= 0 {
		return
	}
	if md, err := j.msg.Metadata(); err == nil && md.NumDelivered >= uint64(c.maxDeliver) {
		c.exhausted.Add(1)
		c.log.Warn("natspacer: a job nakked on its last delivery (MaxDeliver): the server will not deliver it again",
			"why", why, "subject", j.msg.Subject(), "max_deliver", c.maxDeliver)
	}
}

// retryInPlace reports the throttled outcome err to j's permit, holds the
// message for its retry-after (the supervisor's InProgress keeps it from
// the server's AckWait meanwhile), then takes a new permit and runs the
// handler again, returning true and its outcome. It returns false, with
// the cause, if the hold or the permit's wait ended first: ctx ended, Stop
// was called (also after a Drain), or the pacer was closed. A Drain alone
// does not end the hold: a message held is being handled.
func (c *Consumption) retryInPlace(j *job, err error) (ran bool, _ error) {
	retry, _ := pacer.IsThrottled(err)
	if retry <= 0 {
		retry = c.retryAfter()
	}
	j.pm.Done(err)
	c.heldInPlace.Add(1)
	t := c.clock.NewTimer(retry)
	defer t.Stop()
	select {
	case <-t.C():
	case <-c.ctx.Done():
		return false, c.ctx.Err()
	case <-c.dropCh: // Stop; a Drain handles a held message to the end
		return false, errStopped
	}
	actx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	go func() {
		select {
		case <-c.dropCh:
			cancel()
		case <-actx.Done():
		}
	}()
	pm, aerr := c.p.Acquire(actx, 1)
	if aerr != nil {
		if c.dropping.Load() {
			return false, errStopped
		}
		return false, aerr
	}
	if c.dropping.Load() {
		pm.Cancel()
		return false, errStopped
	}
	j.pm = pm
	pm.Start()
	return true, c.run(j.msg)
}

// retryAfter is the delay of a throttled outcome that names none: the
// RetryAfter option's, else the pacer's Config.DefaultRetryAfter.
func (c *Consumption) retryAfter() time.Duration {
	if c.cfg.retryAfter > 0 {
		return c.cfg.retryAfter
	}
	return c.p.RetryAfter(0)
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
