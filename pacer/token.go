package pacer

import (
	"context"
	"time"
)

// TokenBucket is a token bucket: it refills continuously at Rate tokens per
// second up to Capacity and starts full. It stands alone: a Pacer does not
// use one (its ceiling is a clamp on the base pace, see Pacer), and the
// worker uses one to pace a load generator.
//
// It paces by a schedule of due times rather than by a balance, so it is
// exact at every rate up to MaxRate: a caller that keeps asking gets
// Rate × t tokens (plus the initial Capacity) even when Go's timers wake it
// late, because the tokens that fell due while it slept are still there
// when it wakes. After idle time the catch-up is capped at Capacity, as a
// token bucket's is. The one exception is the catch-up a late timer leaves:
// a waiter that woke d late lets the takers right after it (within 2d +
// 5ms) take the d × Rate tokens that fell due while it overslept. So over
// any window W no more than Capacity + Rate × (W + d) pass, d being the
// timer's lateness (about 1ms here); with explicit times (TryAcquireAt) no
// more than Capacity + Rate × W.
//
// Its words are the Pacer's and the LeakyBucket's: TryAcquire is the fast
// path, it never blocks, allocates nothing, and fails while callers are
// queued in Acquire so that they are served in order; Acquire waits. All
// methods are safe for concurrent use.
//
// Time that runs backwards never takes tokens away, as in x/time/rate: a
// time before the latest one seen is taken as that latest time. Seen are
// the times given to the …At methods and every reading of a Clock other
// than the system clock (a fake clock, or one that may be stepped back).
// The system clock's readings are monotonic and are not recorded, which
// keeps TryAcquire at one atomic write: an explicit time is compared with
// the other times seen, not with them. A time taken as a later one gives
// no tokens either: a clock stepped back by d refills nothing until it has
// caught up the d (x/time/rate moves its last time back instead, so that
// the time between counts twice). A new bucket is full at whatever time it
// is first asked at, even one read just before it was made.
//
// A take of n = 0 is granted: TryAcquire(0) is true and Acquire(ctx, 0)
// returns at once with nil, or ErrClosed after Close, or ctx.Err() if ctx
// has ended, as any Acquire does. Nothing was asked, so nothing is
// refused, taken or queued (a false would read as "throttled" to a caller
// whose batch came out empty). A negative n is a caller's bug: TryAcquire
// fails and Acquire returns an error wrapping ErrInvalid.
type TokenBucket struct {
	s sched
}

// NewTokenBucket returns a full bucket that refills at rate tokens per
// second up to capacity tokens, reading time from clock (nil means the
// system clock). rate must be in [MinRate, MaxRate], capacity at least
// MinCapacity, and capacity ÷ rate at most MaxFill seconds.
func NewTokenBucket(rate, capacity float64, clock Clock) (*TokenBucket, error) {
	if err := checkRate("rate", rate); err != nil {
		return nil, err
	}
	if err := checkCapacity("capacity", capacity); err != nil {
		return nil, err
	}
	if err := checkFill(rate, capacity); err != nil {
		return nil, err
	}
	b := &TokenBucket{}
	b.s.init(clock, rate, capacity)
	return b, nil
}

// TryAcquire takes n tokens if they are there now and reports whether it
// did. It fails, taking nothing, while other callers wait in Acquire, and
// for any n larger than the capacity or below 0. n = 0 is granted, even
// while others wait. It never blocks.
func (b *TokenBucket) TryAcquire(n int) bool {
	return b.tryAcquire(b.s.now(), n)
}

// tryAcquire is the fast path: nothing while others wait, nothing above
// the capacity, and nothing for n < 1 but n = 0, which is granted.
func (b *TokenBucket) tryAcquire(now int64, n int) bool {
	f := float64(n)
	if b.s.waiters.Load() != 0 || n < 1 || f > b.s.cfg.Load().capacity {
		return n == 0
	}
	_, ok := b.s.take(now, f)
	return ok
}

// TryAcquireAt is TryAcquire at time now, for callers that keep their own
// time (tests, simulations): times are on the bucket's clock. A time
// before the latest one seen is taken as the latest (see TokenBucket): it
// finds the tokens that were there then.
func (b *TokenBucket) TryAcquireAt(now time.Time, n int) bool {
	return b.tryAcquire(b.s.see(b.s.ticks(now)), n)
}

// Acquire takes n tokens, waiting until they are there. Waiters are served
// in the order they called. If ctx ends first, Acquire returns ctx.Err()
// and takes nothing, and the waiters behind it move up. n larger than the
// capacity is allowed: Acquire waits until the bucket has refilled n
// tokens in all and leaves it empty (as asyncutils.buckets (Python)'s
// consume does). Acquire returns ErrClosed after Close, and an error
// wrapping ErrInvalid for n < 0; n = 0 returns at once.
func (b *TokenBucket) Acquire(ctx context.Context, n int) error {
	if err := checkAmount(n); err != nil {
		return err
	}
	if b.s.isClosed() {
		return ErrClosed
	}
	if n == 0 {
		return ctx.Err()
	}
	_, err := b.s.wait(ctx, float64(n))
	return err
}

// Tokens returns the tokens in the bucket now.
func (b *TokenBucket) Tokens() float64 { return b.s.tokens(b.s.now()) }

// TokensAt returns the tokens in the bucket at time now, or at the latest
// time seen if now is before it.
func (b *TokenBucket) TokensAt(now time.Time) float64 { return b.s.tokens(b.s.ticks(now)) }

// Rate returns the refill rate in tokens per second.
func (b *TokenBucket) Rate() float64 { return b.s.cfg.Load().rate }

// Capacity returns the capacity (burst) in tokens.
func (b *TokenBucket) Capacity() float64 { return b.s.cfg.Load().capacity }

// SetRate changes the refill rate. The balance is settled at the old rate
// first (at the latest time seen, if the clock reads earlier); waiters
// recompute their due times at once.
func (b *TokenBucket) SetRate(rate float64) error { return b.SetRateAt(b.s.clock.Now(), rate) }

// SetRateAt is SetRate at time now.
func (b *TokenBucket) SetRateAt(now time.Time, rate float64) error {
	if err := checkRate("rate", rate); err != nil {
		return err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if err := checkFill(rate, b.s.cfg.Load().capacity); err != nil {
		return err
	}
	b.s.reconfigure(b.s.ticks(now), rate, b.s.cfg.Load().capacity)
	return nil
}

// SetCapacity changes the capacity. The balance is settled first and kept,
// cut to the new capacity if it is larger.
func (b *TokenBucket) SetCapacity(capacity float64) error {
	return b.SetCapacityAt(b.s.clock.Now(), capacity)
}

// SetCapacityAt is SetCapacity at time now.
func (b *TokenBucket) SetCapacityAt(now time.Time, capacity float64) error {
	if err := checkCapacity("capacity", capacity); err != nil {
		return err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if err := checkFill(b.s.cfg.Load().rate, capacity); err != nil {
		return err
	}
	b.s.reconfigure(b.s.ticks(now), b.s.cfg.Load().rate, capacity)
	return nil
}

// Close makes every waiting and future Acquire return ErrClosed.
// TryAcquire keeps working.
func (b *TokenBucket) Close() { b.s.close() }
