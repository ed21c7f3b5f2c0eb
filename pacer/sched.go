package pacer

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// sched is the scheduling core shared by TokenBucket and LeakyBucket: a
// token bucket kept as a schedule of due times (GCRA). Instead of a balance
// it keeps zero, the instant at which the balance was (or will be) zero;
// the balance at time t is (t - max(zero, floor)) / cost, where the floor
// is normally t - full (the cap at capacity). A take of n moves zero
// forward by n × cost. Because zero is a point on the schedule and not a
// balance, permits fall due at exact times whatever the timers do; the
// floor is lowered in two cases where the bucket is not idle: while
// callers queue (from the start of the busy period), and for a short
// while after a waiter took its tokens late (credit).
//
// Time is kept in ticks of 1/16 ns since epoch (18 years of range), so a
// token's cost is exact to a tick even at MaxRate.
//
// Time never runs backwards here: last is the latest time seen, and a
// time before it is taken as last, so that a caller's clock stepped back,
// or a goroutine that read the clock before another took, neither takes
// tokens away nor gives any (x/time/rate takes an earlier time as its last
// too). What is seen: an explicit time given to a take (TryAcquireAt), a
// reconfigure's, and every reading of a Clock other than the system
// clock. A reading of the system clock is not recorded: it is monotonic,
// and recording it would cost the fast path a second atomic write (about
// 5ns, 15%). Until the first take the schedule is fresh, full at any time,
// so a time read just before the bucket was made finds it full. Reads
// (tokens, dueFrom) take a time before last as last but record nothing.
//
// The fast path (take) is one atomic load each of zero, last (on zero's
// cache line), cfg and credit and one CAS on zero. Setters swap zero to a sentinel while they install a new
// cfg, so a taker never combines a zero with a cfg it does not belong to.
type sched struct {
	// Read on every take, written rarely: kept off zero's cache line so
	// that concurrent takers do not miss on them each time zero moves.
	waiters atomic.Int64 // blocking takers queued; TryAcquire fails while any wait
	// smooth turns the catch-up off: a waiter woken late takes at most
	// the capacity, not what fell due while it slept. A Pacer sets it
	// while the downstream's capacity limits the pace, where a burst
	// costs 429s and the rate the schedule promised matters less.
	smooth atomic.Bool
	cfg    atomic.Pointer[schedCfg]
	credit atomic.Pointer[credit]
	busy   atomic.Int64 // ticks at which the queue last became non-empty
	held   atomic.Int64 // ticks until which hold paused the schedule
	_      [64]byte
	zero   atomic.Int64 // ticks, or locked
	last   atomic.Int64 // ticks: the latest time seen (see above); recorded before the take it times
	_      [48]byte

	clock  Clock
	sys    bool      // clock is the system clock: read time with time.Since(epoch)
	epoch  time.Time // tick 0
	closed chan struct{}
	shut   atomic.Bool // set once closed is closed: the fast paths read it

	// tick, when set, is called with mu held before a waiter computes its
	// due time; it returns the next instant at which it wants to be called
	// again (LeakyBucket's adaptation period), or math.MaxInt64.
	tick func(now int64) int64

	mu     sync.Mutex // guards q and queued, and serialises reconfigure
	q      []*waiter  // FIFO of blocking takers; q[0] is the head
	queued float64    // tokens the waiters in q asked for
}

const (
	tickShift    = 4
	ticksPerNano = 1 << tickShift
	ticksPerSec  = 1e9 * ticksPerNano
	locked       = math.MinInt64
	fresh        = math.MinInt64 / 4 // zero of a schedule never taken from: full at any time
	creditGrace  = int64(5*time.Millisecond) << tickShift
	maxTicks     = 1 << 61 // bound of any cost: far from overflow, far from locked
)

// MaxRate is the largest rate a bucket accepts, in tokens per second.
const MaxRate = 1e9

type schedCfg struct {
	rate     float64 // tokens per second
	capacity float64 // tokens
	cost     float64 // ticks per token
	full     int64   // ticks to fill an empty bucket: capacity × cost
}

// credit lets the takers that follow a late-woken waiter take the permits
// that fell due while it slept: until the instant until, the floor of the
// schedule is floor instead of now - full. It holds for cfg alone: a
// reconfigure makes it void.
type credit struct {
	floor, until int64
	cfg          *schedCfg
}

type waiter struct {
	wake chan struct{} // buffered 1: became head, or cfg changed
	n    float64       // tokens asked for
}

// newCfg makes the cfg for rate (at most MaxRate: a leaky bucket's
// leak × factor may ask for more) and capacity.
func newCfg(rate, capacity float64) *schedCfg {
	rate = min(rate, MaxRate)
	cost := ticksPerSec / rate
	return &schedCfg{rate: rate, capacity: capacity, cost: cost, full: int64(capacity * cost)}
}

// init sets the schedule up full, at the clock's current time and at any
// time before the first take.
func (s *sched) init(clock Clock, rate, capacity float64) {
	s.clock = orSystem(clock)
	_, s.sys = s.clock.(systemClock)
	s.epoch = s.clock.Now()
	s.closed = make(chan struct{})
	s.cfg.Store(newCfg(rate, capacity))
	s.zero.Store(fresh)
	s.last.Store(math.MinInt64)
	s.held.Store(math.MinInt64)
}

// now reads the clock: a Clock other than the system clock may be stepped
// back, so its reading is recorded as seen, and the latest time seen is
// returned if it is later.
func (s *sched) now() int64 {
	if s.sys {
		return int64(time.Since(s.epoch)) << tickShift
	}
	return s.see(s.ticks(s.clock.Now()))
}

func (s *sched) ticks(t time.Time) int64 { return int64(t.Sub(s.epoch)) << tickShift }

// see records now as seen and returns the latest time seen: now, or last
// if now is before it.
func (s *sched) see(now int64) int64 {
	for {
		l := s.last.Load()
		if now <= l {
			return l
		}
		if s.last.CompareAndSwap(l, now) {
			return now
		}
	}
}

// costOf is the ticks n tokens take, truncated as full is, so that a take
// of exactly the capacity fits a full bucket; a take is at most one tick
// (1/16 ns) cheap.
// It saturates at maxTicks rather than wrap.
func (c *schedCfg) costOf(n float64) int64 {
	if t := n * c.cost; t < maxTicks {
		return int64(t)
	}
	return maxTicks
}

// floor is the earliest zero may be at now: a full bucket, or the credit
// left by a late waiter.
func (s *sched) floor(now int64, c *schedCfg) int64 {
	f := now - c.full
	if cr := s.credit.Load(); cr != nil && cr.cfg == c && now <= cr.until && cr.floor < f {
		f = cr.floor
	}
	return f
}

// load returns zero and the cfg it belongs to, waiting out a reconfigure.
func (s *sched) load() (int64, *schedCfg) {
	for {
		z := s.zero.Load()
		if z != locked {
			return z, s.cfg.Load()
		}
		// reconfigure holds mu while zero is locked: wait for it.
		s.mu.Lock()
		_ = s.zero.Load()
		s.mu.Unlock()
	}
}

// take takes n tokens at now, or at the latest time seen if now is before
// it, if they are there; it returns the time it took them at.
func (s *sched) take(now int64, n float64) (int64, bool) {
	_, at, ok := s.takeFrom(now, n, math.MaxInt64)
	return at, ok
}

// takeFrom is take with the schedule's floor lowered to at most from: a
// waiter that slept until its due time takes its tokens on the schedule,
// however late its timer woke it. It returns the new zero too.
func (s *sched) takeFrom(now int64, n float64, from int64) (nz, at int64, ok bool) {
	for {
		z, c := s.load()
		// last after zero: a time is seen before it takes, so a zero
		// moved at a later time is never judged at an earlier one.
		now = max(now, s.last.Load())
		base := min(s.floor(now, c), from)
		if z > base {
			base = z
		}
		nz := base + c.costOf(n)
		if nz > now {
			return 0, now, false
		}
		if s.zero.CompareAndSwap(z, nz) {
			return nz, now, true
		}
	}
}

// tokens is the balance at now, or at the latest time seen if now is
// before it.
func (s *sched) tokens(now int64) float64 {
	z, c := s.load()
	now = max(now, s.last.Load())
	base := s.floor(now, c)
	if z > base {
		base = z
	}
	return float64(now-base) / c.cost
}

// dueFrom is the instant at which n tokens will be there, if nobody else
// takes, with the floor lowered to at most from as in takeFrom.
func (s *sched) dueFrom(now int64, n float64, from int64) int64 {
	z, c := s.load()
	now = max(now, s.last.Load())
	base := min(s.floor(now, c), from)
	if z > base {
		base = z
	}
	return base + c.costOf(n)
}

// refund gives back n tokens taken earlier, without overfilling.
func (s *sched) refund(now int64, n float64) {
	for {
		z, c := s.load()
		f := max(now, s.last.Load()) - c.full
		if z <= f {
			return
		}
		// Never back past a pause: hold's instant stays.
		nz := max(z-c.costOf(n), f, s.held.Load())
		if nz >= z {
			return
		}
		if s.zero.CompareAndSwap(z, nz) {
			return
		}
	}
}

// reconfigure settles the balance at now (or at the latest time seen, if
// now is before it) under the old cfg and installs rate and capacity. It
// requires mu held.
func (s *sched) reconfigure(now int64, rate, capacity float64) {
	old := s.cfg.Load()
	z := s.zero.Swap(locked)
	now = s.see(now)
	base := max(z, s.floor(now, old))
	bal := min(float64(now-base)/old.cost, capacity)
	nc := newCfg(rate, capacity)
	nz := now - int64(bal*nc.cost)
	if z > now {
		nz = z // paused (hold): a pause is a length of time, not a debt to rescale
	}
	if nz == z {
		nz-- // zero must change, or a taker holding the old pair could CAS
	}
	s.credit.Store(nil)
	s.cfg.Store(nc)
	s.zero.Store(nz)
	if len(s.q) > 0 {
		kick(s.q[0])
	}
}

// close fails every waiter, present and future, with ErrClosed.
func (s *sched) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
	default:
		s.shut.Store(true)
		close(s.closed)
	}
}

func (s *sched) isClosed() bool { return s.shut.Load() }

// queuedTokens returns the tokens the waiters asked for.
func (s *sched) queuedTokens() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// hold keeps anything from being taken before until: the schedule resumes
// then, from empty.
func (s *sched) hold(until int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zero.Swap(locked)
	if until > z {
		s.credit.Store(nil)
		z = until
	}
	s.held.Store(max(s.held.Load(), until))
	s.zero.Store(z)
	if len(s.q) > 0 {
		kick(s.q[0])
	}
}
