package natspacer

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// supervise stops the consumption when ctx ends, sends InProgress for the
// messages held ProgressEvery or longer, and shuts the consumption down
// in order once it is stopping: gatherers, fetcher and readers first
// (the fetches in flight end within PollWait and hand their messages to
// the workers), then the permits left in the pool go back, then work is
// closed and the workers finish.
func (c *Consumption) supervise() {
	every := max(c.cfg.progressEvery/4, 5*time.Millisecond)
	tick := c.clock.NewTimer(every)
	defer func() { tick.Stop() }()
	ctxDone := c.ctx.Done()
	// wait returns when done is closed, touching the held messages each
	// tick meanwhile; ctx ending stops the consumption.
	wait := func(done <-chan struct{}) {
		for {
			select {
			case <-done:
				return
			case <-ctxDone:
				c.stop(nil)
				ctxDone = nil
			case now := <-tick.C():
				c.touch(now)
				tick = c.clock.NewTimer(every)
			}
		}
	}
	wait(c.stopCh)

	loopsDone := make(chan struct{})
	go func() { c.loops.Wait(); c.readers.Wait(); close(loopsDone) }()
	wait(loopsDone)

	c.mu.Lock()
	pool := c.pool
	c.pool = nil
	c.mu.Unlock()
	for _, pm := range pool {
		pm.Cancel() // never used: give it back, no outcome
	}
	c.returned.Add(uint64(len(pool)))
	close(c.work)

	workersDone := make(chan struct{})
	go func() { c.workers.Wait(); close(workersDone) }()
	wait(workersDone)
	close(c.done)
}

// touch sends InProgress for every unfinished message of each batch held
// ProgressEvery or longer since it was received or last touched.
func (c *Consumption) touch(now time.Time) {
	var due []*job
	c.mu.Lock()
	for b := c.batches.head; b != nil && now.Sub(b.touched) >= c.cfg.progressEvery; b = c.batches.head {
		b.touched = now
		c.batches.remove(b)
		c.batches.pushBack(b)
		for i := range b.jobs[:b.n] {
			if j := &b.jobs[i]; !j.done.Load() {
				due = append(due, j)
			}
		}
	}
	c.mu.Unlock()
	for _, j := range due {
		j.mu.Lock()
		if j.done.Load() {
			j.mu.Unlock()
			continue
		}
		if c.cfg.progressHook != nil {
			c.cfg.progressHook(j.done.Load)
		}
		err := j.msg.InProgress()
		j.mu.Unlock()
		if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			c.ackErrors.Add(1)
			c.log.Warn("natspacer: InProgress failed; the message may be redelivered after AckWait", "err", err)
			continue
		}
		c.progress.Add(1)
	}
}
