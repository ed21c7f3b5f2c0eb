package lease

import "math"

// settleMode ends ModeRejoining when its time is up. It requires mu held.
func (b *Bucket) settleMode(now float64) {
	if b.mode == ModeRejoining && now >= b.rejoinUntil {
		b.mode = ModeShared
	}
}

// share is the local rate during an outage. It requires mu held.
func (b *Bucket) share() float64 {
	return b.rate / float64(max(b.cfg.ExpectedWorkers, b.workers, 1))
}

// SetRate changes the fleet-wide rate. The shared bucket is settled under
// the old rate at this worker's next store call; set the same rate on
// every worker of the fleet.
func (b *Bucket) SetRate(rate float64) error {
	if err := b.cfg.CheckRate("rate", rate); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate = rate
	if b.mode != ModeShared {
		b.gate.setRate(b.now(), b.share(), b.gateBurst())
	}
	return nil
}

// gateBurst is the local share's capacity: the fleet's Burst shared out in
// fallback; while rejoining, the largest lease. It requires mu held.
func (b *Bucket) gateBurst() float64 {
	if b.mode == ModeRejoining {
		return max(1, math.Floor(b.share()*b.lease/1e6/2))
	}
	return max(1, b.cfg.Burst/float64(max(b.cfg.ExpectedWorkers, b.workers, 1)))
}

// Stats returns a snapshot of the bucket's state and counters.
func (b *Bucket) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settleMode(b.now())
	s := b.st
	s.Mode, s.Rate, s.Workers, s.Share = b.mode, b.rate, b.workers, b.share()
	if b.mode == ModeFallback {
		s.FallbackSince = b.since
	}
	if b.lastErr != nil {
		s.LastError = b.lastErr.Error()
	}
	return s
}

// Close stops the background goroutine, gives the leased slots not yet
// used back to the store when it can (one call, bounded by Timeout), and makes
// waiting and future Waits return b.cfg.ErrClosed. It returns once the goroutine
// has stopped. Calling it again does nothing.
func (b *Bucket) Close() {
	b.closeOnce.Do(func() { close(b.closed) })
	<-b.done
}
