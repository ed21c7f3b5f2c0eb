// Package pacer paces how fast a worker takes jobs from a queue.
//
// A Pacer composes the limits that a worker asks before each job:
//
//   - the hard ceiling (Config.Rate, Config.Burst);
//   - a LeakyBucket, the smooth base pace (Config.Base) times a factor that
//     the controller (Pacer.Run) raises while the queue's backlog is deep,
//     lets sink back as it drains, and cuts, once for the whole pacer, when
//     the downstream pushes back with a Throttled outcome; the factor is
//     clamped so that the base pace never passes the ceiling;
//   - an in-flight cap (Config.MaxInFlight);
//   - optionally a Limiter shared with other processes (Config.Limiter).
//
// Keyed paces many keys (tenants, destinations) under one worker
// ceiling: each key its own pace, learned from its own pushback, and a
// weighted max-min fair share of the ceiling among the keys with callers
// waiting (docs/keys.md).
//
// TokenBucket is the plain token bucket, for callers who want one alone.
// Both buckets pace by a schedule of due times, not by a balance, so a
// caller that keeps asking gets exactly the rate it was promised, even at a
// million per second and even when Go's timers wake it late. The fast path
// (TokenBucket.TryAcquire) is one atomic compare-and-swap and one monotonic
// clock read, and allocates nothing.
//
// The buckets port asyncutils.buckets (Python); docs/core.md maps each of its
// names to the Go one and lists its bugs fixed here.
//
// One vocabulary runs through the package: TryAcquire never blocks and
// reports whether it took; Acquire(ctx, n) waits, in order, until ctx ends;
// an At suffix (TryAcquireAt, TokensAt, SetRateAt) takes the time as an
// argument. Counts of jobs and tokens are ints.
//
// Time comes from a Clock; nil means the system clock, and package testutil
// has a fake one for tests. Every method of every type here is safe for
// concurrent use. The package imports the standard library only; adapters
// for Asynq and NATS, and a Redis-held limit shared by a fleet, live in
// their own packages under adapters/.
package pacer
