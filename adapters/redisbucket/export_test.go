package redisbucket

import "github.com/jobpacer/pacer/adapters/internal/lease"

// Waiting returns how many Wait calls b holds: tests use it to know that
// a Wait is blocked.
func Waiting(b *Bucket) int { return b.b.Waiting() }

// Dur is the µs-to-Duration conversion of Wait's timers.
var Dur = lease.Dur
