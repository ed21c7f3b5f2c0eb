package pacer

// Waiters returns the callers queued in b.Take, for tests that must know a
// goroutine has queued before they go on.
func Waiters(b *TokenBucket) int64 { return b.s.waiters.Load() }
