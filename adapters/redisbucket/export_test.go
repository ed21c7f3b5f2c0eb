package redisbucket

// Waiting returns how many Wait calls b holds: tests use it to know that
// a Wait is blocked.
func Waiting(b *Bucket) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q)
}

// Dur is dur, the µs-to-Duration conversion of Wait's timers.
var Dur = dur
