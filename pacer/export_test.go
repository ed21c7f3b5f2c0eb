package pacer

// Waiters returns the callers queued in b.Acquire, for tests that must know a
// goroutine has queued before they go on.
func Waiters(b *TokenBucket) int64 { return b.s.waiters.Load() }

// SlotWaiters returns the callers queued for an in-flight slot of p.
func SlotWaiters(p *Pacer) int {
	p.slots.mu.Lock()
	defer p.slots.mu.Unlock()
	return len(p.slots.q)
}
