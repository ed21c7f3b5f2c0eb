package natspacer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/pacer"
)

// job is one message received, with its permit.
type job struct {
	msg  jetstream.Msg
	pm   *pacer.Permit
	b    *batch
	recv time.Duration // if not 0, 1ns + when it was received, since Consumption.start: its wait is sampled
	done atomic.Bool   // finished: no InProgress for it any more
	// mu makes "done is false, send InProgress" and "set done, send the
	// ack, nak or term" exclusive, so that no InProgress follows the
	// outcome: a late one would restart the AckWait of a NakWithDelay.
	// (nats.go refuses InProgress after a nak, but checks before it
	// publishes, so the two can still cross without this.)
	mu sync.Mutex
}

// batch is the messages one Fetch delivered, tracked together for
// InProgress: their AckWait runs from about the same time.
type batch struct {
	remaining atomic.Int32 // jobs not finished, plus 1 while the batch is read

	jobs []job // one per permit of the Fetch; jobs[:n] received

	// guarded by Consumption.mu:
	n          int
	touched    time.Time // received, or last InProgress
	prev, next *batch    // in Consumption.batches, oldest touched first
}

// batchList is an intrusive doubly linked list of batches.
type batchList struct{ head, tail *batch }

func (l *batchList) pushBack(b *batch) {
	b.prev, b.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = b
	} else {
		l.head = b
	}
	l.tail = b
}

func (l *batchList) remove(b *batch) {
	if b.prev != nil {
		b.prev.next = b.next
	} else if l.head == b {
		l.head = b.next
	} else {
		return // not in the list
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		l.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

// release marks one reference to b finished, and drops b from the
// InProgress list after the last.
func (c *Consumption) release(b *batch) {
	if b.remaining.Add(-1) == 0 {
		c.mu.Lock()
		c.batches.remove(b)
		c.mu.Unlock()
	}
}

// read hands each message of a Fetch, with its permit, to the workers,
// and gives the permits the Fetch did not use back to the pool. It takes
// the messages that arrived together as a group, under one lock. It parses
// the metadata of the last message only: its NumPending is the newest,
// and parsing every reply subject would cost more than a raw consumer
// spends on the whole message.
func (c *Consumption) read(mb jetstream.MessageBatch, pms []*pacer.Permit, sent time.Duration) {
	defer c.readers.Done()
	b := &batch{jobs: make([]job, len(pms))} // one allocation for the Fetch's jobs
	b.remaining.Store(1)                     // the reader's own reference
	msgs := mb.Messages()
	i := 0
	var since time.Duration // when the last group came
	var last jetstream.Msg
	for msg := range msgs {
		from := i
		for msg != nil {
			if i == len(pms) { // more than asked for: cannot happen, but never hold it
				_ = msg.Nak()
				c.log.Error("natspacer: a Fetch returned more messages than asked for; nakked the extra", "asked", len(pms))
			} else {
				b.jobs[i] = job{msg: msg, pm: pms[i], b: b}
				i++
				last = msg
			}
			if i-from == 64 {
				break
			}
			select { // take what else has arrived, without waiting
			case msg = <-msgs:
			default:
				msg = nil
			}
		}
		g := i - from
		if g == 0 {
			continue
		}
		now := c.clock.Now()
		since = now.Sub(c.start)
		b.jobs[i-1].recv = since + 1 // the group's last waits longest: sample its wait
		b.remaining.Add(int32(g))
		c.busy.Add(int64(g))
		c.mu.Lock()
		c.out -= g
		if b.n == 0 {
			b.touched = now
			c.batches.pushBack(b)
		}
		b.n = i
		c.mu.Unlock()
		c.received.Add(uint64(g))
		for k := from; k < i; k++ {
			c.work <- &b.jobs[k] // never blocks: busy ≤ capacity = cap(work)
		}
	}
	c.release(b)
	c.fetched(mb.Error(), pms, i, last, since-sent)
}

// fetched ends a Fetch that brought got messages of the len(pms) asked
// for (the last one last, the last group rtt after the Fetch was sent):
// it reads the newest NumPending, adjusts the window, gives back the
// permits not used and, if the Fetch failed, backs off.
func (c *Consumption) fetched(err error, pms []*pacer.Permit, got int, last jetstream.Msg, rtt time.Duration) {
	var md *jetstream.MsgMetadata
	if last != nil {
		var merr error
		if md, merr = last.Metadata(); merr != nil {
			c.log.Warn("natspacer: message metadata does not parse", "err", merr)
		} else if c.cfg.probe != nil {
			c.cfg.probe.Observe(md)
		}
	}
	full := got == len(pms) && err == nil
	if !full {
		rtt = 0
	}
	end, pace := c.since(), c.p.Stats().Pace
	c.mu.Lock()
	c.fetching--
	c.adjust(full, rtt, end, pace)
	if md != nil {
		c.pendingEst = int64(md.NumPending)
	}
	if err == nil {
		c.backoff = 0
		c.failStreak = 0
	}
	c.mu.Unlock()
	if got < len(pms) {
		// Dry only if no message came: a short Fetch's last message
		// carries the newest NumPending, kept above.
		c.giveBack(pms[got:], err == nil && last == nil)
	} else {
		kick(c.kickFetch)
		kick(c.kickGather)
	}
	if err != nil {
		c.fetchFailed(err)
	}
}
