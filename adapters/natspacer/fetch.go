package natspacer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/pacer"
)

// maxFetches is how many Fetch requests one consumption keeps waiting on
// the server at most. The server refuses pull requests past the
// consumer's MaxWaiting (512 by default) for all its workers together;
// and while the fetches are all out, permits gather in the pool, so the
// next Fetch carries more of them.
const maxFetches = 4

// checkAfter is how many fetches in a row may fail before Consumer.Info is
// asked whether the consumer still exists.
const checkAfter = 3

// fetchLoop fetches as many messages as the pool holds permits, up to
// MaxBatch at a time, and hands each batch to a reader. While the next
// permit falls due within BatchLinger of the pool's oldest, it waits for
// it, so that at high rates one round trip fetches several messages; at
// low rates each permit is fetched as soon as it is given.
func (c *Consumption) fetchLoop() {
	defer c.loops.Done()
	for {
		c.mu.Lock()
		for !c.stopping && (len(c.pool) == 0 || c.fetching >= c.maxFetches) {
			c.mu.Unlock()
			select {
			case <-c.kickFetch:
			case <-c.stopCh:
			}
			c.mu.Lock()
		}
		if c.stopping {
			c.mu.Unlock()
			return
		}
		if wait := c.retryAt.Sub(c.clock.Now()); wait > 0 {
			c.mu.Unlock()
			c.sleep(wait, nil)
			continue
		}
		// More permits come soon while a gatherer waits in Acquire or is
		// about to: not while the window or the in-flight cap is full.
		if len(c.pool) < c.cfg.maxBatch && (c.gathering > 0 || c.wanted() > 0) {
			if wait := c.poolSince.Add(c.cfg.linger).Sub(c.clock.Now()); wait > 0 {
				c.mu.Unlock()
				if c.p.EstimateWait(1) < wait {
					c.sleep(wait, c.kickFetch) // a kick: the pool is full, or stopping
					continue
				}
				c.mu.Lock()
			}
		}
		k := min(len(c.pool), c.cfg.maxBatch)
		pms := append([]*pacer.Permit(nil), c.pool[:k]...)
		c.pool = append(c.pool[:0], c.pool[k:]...)
		if len(c.pool) > 0 {
			c.poolSince = c.clock.Now()
		}
		c.out += k
		c.fetching++
		c.mu.Unlock()

		sent := c.since()
		batch, err := c.cons.Fetch(k, jetstream.FetchMaxWait(c.cfg.pollWait))
		if err != nil {
			c.mu.Lock()
			c.fetching--
			c.mu.Unlock()
			// Hold no permits through the backoff: one is gathered again
			// for the retry, more once messages show up.
			c.giveBack(pms, true)
			if c.fetchFailed(err) {
				return
			}
			continue
		}
		c.fetches.Add(1)
		c.readers.Add(1)
		go c.read(batch, pms, sent)
	}
}

// sleep waits d on the consumption's clock, or until wake (if not nil)
// has a value or the consumption stops.
func (c *Consumption) sleep(d time.Duration, wake <-chan struct{}) {
	t := c.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
	case <-wake:
	case <-c.stopCh:
	}
}

// giveBack gives back to the pacer the permits a Fetch did not use
// (Permit.Cancel: no outcome, not dispatched). dry means the consumer had
// no more messages: until the next message says otherwise, one permit is
// wanted, for the long poll.
func (c *Consumption) giveBack(pms []*pacer.Permit, dry bool) {
	for _, pm := range pms {
		pm.Cancel()
	}
	c.returned.Add(uint64(len(pms)))
	c.mu.Lock()
	c.out -= len(pms)
	if dry {
		c.pendingEst = 0
	}
	c.mu.Unlock()
	kick(c.kickFetch)
	kick(c.kickGather)
}

// fetchFailed logs a fetch error, stops the consumption and reports true
// if it is terminal, or else backs off the next Fetch.
func (c *Consumption) fetchFailed(err error) (terminal bool) {
	c.fetchErrors.Add(1)
	c.mu.Lock()
	c.failStreak++
	streak := c.failStreak
	c.mu.Unlock()
	var stopErr error
	switch {
	case requestLimitErr(err):
		stopErr = fmt.Errorf("natspacer: fetching: %w (the consumer's pull request limits are lower than when Consume "+
			"read them: start Consume again)", err)
	case terminalErr(err):
		stopErr = fmt.Errorf("natspacer: fetching: %w", err)
	case errors.Is(err, nats.ErrNoResponders) || streak >= checkAfter:
		// Nobody answers pull requests for a consumer deleted while no
		// Fetch waited on it (those that wait get "consumer deleted"); a
		// server that is still starting looks the same, so ask.
		if gone := c.consumerGone(); gone != nil {
			stopErr = fmt.Errorf("natspacer: fetching: %w; consumer info: %w", err, gone)
		}
	}
	if stopErr != nil {
		c.mu.Lock()
		already := c.stopping
		c.mu.Unlock()
		if !already { // each fetch in flight may fail the same way: log once
			c.log.Error("natspacer: fetch failed; stopping", "err", stopErr)
		}
		c.stop(stopErr)
		return true
	}
	now := c.clock.Now()
	c.mu.Lock()
	c.backoff = min(max(2*c.backoff, 50*time.Millisecond), 2*time.Second)
	c.retryAt = now.Add(c.backoff)
	d := c.backoff
	c.mu.Unlock()
	c.log.Warn("natspacer: fetch failed; retrying", "err", err, "retry_in", d)
	return false
}

// consumerGone asks the server for the consumer's info and returns the
// error if it says the consumer or its stream does not exist, else nil.
func (c *Consumption) consumerGone() error {
	ctx, cancel := context.WithTimeout(c.gctx, 2*time.Second)
	defer cancel()
	_, err := c.cons.Info(ctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	return nil
}

func terminalErr(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound)
}

// requestLimitErr reports whether err is the server's 409 refusing a pull
// request past the consumer's MaxRequestBatch, MaxRequestExpires or
// MaxRequestMaxBytes ("Exceeded MaxRequestBatch of 10"). nats.go passes
// it on as an error with that text only.
func requestLimitErr(err error) bool {
	return strings.Contains(err.Error(), "Exceeded MaxRequest")
}
