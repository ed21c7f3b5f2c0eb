package redisbucket

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/redis/go-redis/v9"
)

// Mode says where a Bucket's tokens come from.
type Mode int

const (
	// ModeRedis: tokens are slots of the shared schedule in Redis.
	ModeRedis Mode = iota
	// ModeFallback: Redis is unreachable (or refuses the script); tokens
	// come from a local bucket at the worker's share of the rate.
	ModeFallback
	// ModeRejoining: Redis is back; for two RetryIntervals the worker
	// leases slots from Redis no faster than its local share, so that a
	// worker that rejoined early cannot take the whole rate while the
	// others still run on their shares.
	ModeRejoining
)

// String returns "redis", "fallback" or "rejoining".
func (m Mode) String() string {
	switch m {
	case ModeRedis:
		return "redis"
	case ModeFallback:
		return "fallback"
	case ModeRejoining:
		return "rejoining"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Stats is a snapshot of a Bucket.
type Stats struct {
	Mode          Mode      // where tokens come from now
	Waiting       int       // Wait calls blocked now, waiting for tokens
	Rate          float64   // the fleet-wide rate, jobs per second
	Workers       int       // workers seen sharing the key at the last Redis call (≥ 1)
	Share         float64   // the local rate during an outage: Rate ÷ max(ExpectedWorkers, Workers, 1)
	Calls         uint64    // script calls to Redis, failed ones included
	Errors        uint64    // calls that failed
	Leases        uint64    // calls that granted tokens
	Granted       uint64    // tokens granted by Redis
	Dispatched    uint64    // tokens handed out by Wait, less those given back by Refund
	Expired       uint64    // leased tokens dropped unused: too late, left behind by a fallback, or refunded too late to be used again
	Returned      uint64    // leased tokens given back to Redis unused
	Fallbacks     uint64    // times the bucket fell back to its local share
	Rejoins       uint64    // times it rejoined the shared bucket
	FallbackSince time.Time // when the current fallback began; zero if not in fallback
	LastError     string    // the last Redis error, "" if none yet
}

// Bucket is a token bucket shared by every worker whose Config has the same
// Key, held in Redis and kept on Redis's clock. It implements pacer.Limiter,
// so a Pacer obeys it after its own ceiling:
//
//	b, err := redisbucket.New(rdb, redisbucket.Config{Key: "sms", Rate: 400})
//	p, err := pacer.New(pacer.Config{Rate: 400, Limiter: b})
//
// A Bucket leases slots of the shared schedule in batches and hands them
// out locally at their due times; a background goroutine does the Redis
// calls, so Close it when done. It is safe for concurrent use.
type Bucket struct {
	rdb    redis.Scripter
	cfg    Config
	keys   []string
	worker string
	clock  pacer.Clock
	epoch  time.Time
	log    *slog.Logger
	// Times in µs: slack (how late a slot may be used), lead (refill this
	// long before the leased slots run out), ahead (how far into the
	// future a lease may reach), window (a worker unseen this long no
	// longer counts), lease (LeaseTime).
	slack, lead, ahead, window, lease float64

	refill    chan struct{} // wakes the refiller; buffered 1
	closed    chan struct{} // closed by Close
	done      chan struct{} // closed when the refiller has returned
	closeOnce sync.Once

	mu          sync.Mutex // guards the fields below; never held across a Redis call or a wait
	rate        float64
	mode        Mode
	segs        []segment // leased slots not yet handed out, in order of due time
	given       []segment // slots handed out lately, in the order they were: what Refund may put back
	q           []*waiter // Wait callers, FIFO; q[0] takes tokens
	workers     int
	gate        gate    // the local share: the fallback's bucket, and while rejoining a limit on leasing
	rejoinUntil float64 // end of ModeRejoining
	nextTry     float64 // no Redis call before this (after a failure or an empty grant)
	busyUntil   float64 // a waiter waited for a slot not yet due: the worker is held by the schedule
	lastDemand  float64 // last Wait call
	demand      float64 // tokens asked for since estAt, less those given back (may be < 0)
	est         float64 // recent demand, tokens per second (EWMA over LeaseTime)
	estAt       float64
	lastGrant   int // tokens of the last lease
	expiredOK   bool
	offsets     offsetFilter
	since       time.Time
	lastErr     error
	st          Stats
}

// segment is a run of leased slots: n slots, the next due at first, cost
// apart (local µs).
type segment struct {
	first float64
	cost  float64 // 0: all due at first
	n     int
	start string // Redis's zero before the take ("" for slots given back by a cancelled Wait)
	end   string // Redis's zero right after the take; "" when these slots may not be returned
	// (A take split in two, its burst and the rest, chains the parts
	// with a made-up end and start.)
}

func (s *segment) last() float64 { return s.first + float64(s.n-1)*s.cost }

// tail is the index from which b.segs is one unbroken run of the schedule
// ending at the last lease's end: what a return may give back, if no other
// worker has leased since. It requires mu held.
func (b *Bucket) tail() int {
	n := len(b.segs)
	if n == 0 || b.segs[n-1].end == "" {
		return n
	}
	i := n - 1
	for i > 0 && b.segs[i-1].end != "" && b.segs[i-1].end == b.segs[i].start {
		i--
	}
	return i
}

type waiter struct {
	n     int
	slots int       // slots taken so far
	taken []segment // the slots taken, in order (runs of the segments they came from)
	gate  int       // local-share tokens taken so far
	from  float64   // the gate's base when w went to sleep for its next token (-Inf: none)
	wake  chan struct{}
	buf   [1]segment // taken's first backing array
}

// maxGiven bounds Bucket.given (contiguous runs are merged, so a few
// entries cover a busy worker's last LeaseTime).
const maxGiven = 64

// appendRun appends the run r to runs, merging it into the last run when
// it continues it (the same take, the next slots).
func appendRun(runs []segment, r segment) []segment {
	if n := len(runs); n > 0 {
		l := &runs[n-1]
		if l.start == r.start && l.end == r.end && l.cost == r.cost && math.Abs(l.first+float64(l.n)*l.cost-r.first) < 1e-6 {
			l.n += r.n
			return runs
		}
	}
	return append(runs, r)
}

// New returns a Bucket for the fleet limit c on the Redis that rdb reaches
// (a *redis.Client, *redis.ClusterClient or *redis.Ring). It calls Redis
// once to check that the script runs: if Redis answers with an error (no
// scripting, a command the script needs denied, not a Redis), New returns
// an error wrapping ErrRefused; if Redis cannot be reached, the Bucket
// starts in ModeFallback, logs it and keeps trying. Bad settings are
// errors wrapping pacer.ErrInvalid that name the field.
func New(rdb redis.Scripter, c Config) (*Bucket, error) {
	if rdb == nil {
		return nil, invalid("client", "nil", "a Redis client (*redis.Client, *redis.ClusterClient, …)")
	}
	if err := c.fill(); err != nil {
		return nil, err
	}
	base := c.Prefix + "{" + c.Key + "}"
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	b := &Bucket{
		rdb:    rdb,
		cfg:    c,
		keys:   []string{base, base + ":workers"},
		worker: workerID(),
		clock:  c.Clock,
		epoch:  c.Clock.Now(),
		log:    c.Logger,
		lease:  us(c.LeaseTime),
		slack:  us(c.LeaseTime),
		lead:   us(c.LeaseTime) / 2,
		ahead:  2 * us(c.LeaseTime),
		window: us(max(2*time.Second, 10*c.LeaseTime)),
		refill: make(chan struct{}, 1),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
		rate:   c.Rate,
		mode:   ModeRedis,
	}
	b.workers = 1
	b.expiredOK = true
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	t0 := b.now()
	r, err := b.call(ctx, b.rate, "take", 0, b.ahead)
	t1 := b.now()
	cancel()
	b.mu.Lock()
	b.st.Calls++
	if err != nil {
		if refused(err) {
			b.mu.Unlock()
			return nil, fmt.Errorf("%w (key %q, EVALSHA/EVAL of a script using TIME, HMGET, HSET, ZADD, ZCARD, PEXPIRE): %v", ErrRefused, c.Key, err)
		}
		b.fail(t1, err)
	} else {
		b.observe(r, t0, t1)
	}
	b.mu.Unlock()
	go b.run()
	return b, nil
}

func workerID() string {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(r[:])
}

// now is the local time in µs since epoch.
func (b *Bucket) now() float64 { return float64(b.clock.Now().Sub(b.epoch)) / 1e3 }

// fmtf formats x for the script: plain decimals, which every Lua reads.
func fmtf(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// call runs the script with op and its arguments after the common ones.
func (b *Bucket) call(ctx context.Context, rate float64, op string, args ...any) (reply, error) {
	argv := append([]any{op, fmtf(rate), fmtf(b.cfg.Burst), b.worker, fmtf(math.Ceil(b.window))}, args...)
	for i, a := range argv {
		if f, ok := a.(float64); ok {
			argv[i] = fmtf(f)
		}
	}
	return run(ctx, b.rdb, b.keys, argv...)
}

// Wait blocks until n tokens of the fleet's limit are this worker's to
// use, and takes them. Callers are served in the order they called. If
// ctx ends first it returns ctx.Err() and takes nothing (the slots it had
// set aside go back to the next caller); after Close it returns ErrClosed.
// Wait never returns a Redis error: when Redis fails the Bucket falls back
// to its local share (see Stats).
func (b *Bucket) Wait(ctx context.Context, n int) error {
	if n < 1 {
		return invalid("n", n, "≥ 1")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &waiter{n: n, wake: make(chan struct{}, 1), from: math.Inf(-1)}
	w.taken = w.buf[:0]
	b.mu.Lock()
	select {
	case <-b.closed:
		b.mu.Unlock()
		return ErrClosed
	default:
	}
	now := b.now()
	b.demand += float64(n)
	b.lastDemand = now
	b.q = append(b.q, w)
	for {
		// b.mu is held here.
		var tc <-chan time.Time
		var timer pacer.Timer
		if b.q[0] == w {
			now := b.now()
			if b.progress(now, w) {
				b.dequeue(w)
				b.st.Dispatched += uint64(n)
				b.handedOut(now, w.taken)
				b.mu.Unlock()
				return nil
			}
			if at := b.wakeAt(now, w); !math.IsInf(at, 1) {
				timer = b.clock.NewTimer(dur(at - now))
				tc = timer.C()
			}
		}
		b.mu.Unlock()
		var err error
		select {
		case <-w.wake:
		case <-tc:
		case <-ctx.Done():
			err = ctx.Err()
		case <-b.closed:
			err = ErrClosed
		}
		if timer != nil {
			timer.Stop()
		}
		b.mu.Lock()
		if err != nil {
			b.abandon(w)
			b.mu.Unlock()
			return err
		}
	}
}

// dur converts µs to a Duration, saturating at maxWait: a wait for a
// token of a tiny share must not wrap to a negative timer that fires at
// once, again and again.
func dur(us float64) time.Duration {
	if us <= 0 {
		return 0
	}
	if ns := math.Ceil(us * 1e3); ns < float64(maxWait) {
		return time.Duration(ns)
	}
	return maxWait
}

// maxWait is the longest timer a Wait sets; it wakes and computes again.
const maxWait = 24 * time.Hour

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// progress takes for the head waiter w what has fallen due, and reports
// whether it now has all it needs. It requires mu held.
func (b *Bucket) progress(now float64, w *waiter) bool {
	b.settleMode(now)
	needSlots, needGate := b.mode != ModeFallback, b.mode == ModeFallback
	if needSlots && w.slots < w.n {
		b.expire(now)
		for w.slots < w.n && len(b.segs) > 0 {
			s := &b.segs[0]
			if s.first > now {
				break
			}
			k := s.n
			if s.cost > 0 {
				k = min(k, int((now-s.first)/s.cost)+1)
			}
			k = min(k, w.n-w.slots)
			w.taken = appendRun(w.taken, segment{first: s.first, cost: s.cost, n: k, start: s.start, end: s.end})
			w.slots += k
			s.n -= k
			s.first += float64(k) * s.cost
			if s.n == 0 {
				b.segs = b.segs[1:]
			}
		}
	}
	if needGate && w.gate < w.n {
		w.gate += b.gate.takeFrom(now, w.n-w.gate, w.from)
		w.from = math.Inf(-1)
	}
	return (!needSlots || w.slots >= w.n) && (!needGate || w.gate >= w.n)
}

// wakeAt is when the head waiter w should look again, +Inf when it must
// wait for the refiller; it kicks the refiller when the leased slots do
// not cover w. It requires mu held.
func (b *Bucket) wakeAt(now float64, w *waiter) float64 {
	at := math.Inf(-1)
	if b.mode != ModeFallback && w.slots < w.n {
		if b.reserved() < w.n-w.slots {
			kick(b.refill)
		}
		if len(b.segs) == 0 {
			return math.Inf(1)
		}
		at = b.segs[0].first
		if b.mode == ModeRedis {
			if b.busyUntil <= now {
				kick(b.refill) // newly held by the schedule: time to prefetch
			}
			b.busyUntil = now + b.lease
		}
	}
	if b.mode == ModeFallback && w.gate < w.n {
		next := b.gate.next(now)
		if next >= at {
			w.from = next - b.gate.cost
		}
		at = max(at, next)
	}
	if b.mode == ModeRejoining {
		at = min(at, b.rejoinUntil)
	}
	return max(at, now)
}

// dequeue removes the head waiter w and wakes the next. It requires mu held.
func (b *Bucket) dequeue(w *waiter) {
	for i, x := range b.q {
		if x == w {
			copy(b.q[i:], b.q[i+1:])
			b.q[len(b.q)-1] = nil
			b.q = b.q[:len(b.q)-1]
			if i == 0 {
				b.wakeHead()
			}
			return
		}
	}
}

// abandon removes a cancelled waiter, giving back what it had taken. It
// requires mu held.
func (b *Bucket) abandon(w *waiter) {
	b.dequeue(w)
	// The slots it took are the earliest leased: back in front, each
	// run as it was (latest first, so they end up in order).
	for i := len(w.taken) - 1; i >= 0; i-- {
		b.restore(w.taken[i])
	}
	if w.gate > 0 {
		b.gate.refund(b.now(), w.gate)
	}
	b.demand -= float64(w.n) // net: it may have been estimated since
}

// handedOut records the runs of slots a Wait has just handed out, so
// that Refund can put them back; it forgets those too old to be used
// again. It requires mu held.
func (b *Bucket) handedOut(now float64, runs []segment) {
	for _, r := range runs {
		b.given = appendRun(b.given, r)
	}
	i := 0
	for i < len(b.given) && (b.given[i].last() < now-b.slack || len(b.given)-i > maxGiven) {
		i++
	}
	if i > 0 {
		b.given = append(b.given[:0], b.given[i:]...)
	}
}

// restore puts the run r of slots, taken from b.segs and not used, back
// in front of b.segs. It keeps the run returnable to Redis (see tail)
// when it is exactly what it was before it was taken: merged into the
// run it was cut from, or alone as the end of its take. It requires mu
// held.
func (b *Bucket) restore(r segment) {
	if r.n <= 0 {
		return
	}
	if len(b.q) > 0 && b.q[0].slots > 0 {
		// The head waiter holds slots taken after r: r is not
		// contiguous with b.segs in the schedule, and may not go back.
		r.start, r.end = "", ""
	} else if len(b.segs) > 0 {
		s := &b.segs[0]
		if s.start == r.start && s.end == r.end && s.cost == r.cost && math.Abs(r.first+float64(r.n)*r.cost-s.first) < 1e-6 {
			s.first, s.n = r.first, s.n+r.n
			return
		}
		if r.end != s.start {
			r.end = ""
		}
	}
	b.segs = append([]segment{r}, b.segs...)
}

// Refund gives back n tokens that Waits handed out for jobs that never
// ran; pacer.Permit.Cancel and CancelN call it (see pacer.Refunder). The
// slots handed out last are put back in front of the leased slots, each
// at its own due time, so the next Wait gets them, and an idle or closing
// worker gives them back to Redis with the rest of its leases. A slot
// refunded more than LeaseTime after its due time is lost (counted in
// Stats.Expired), as any slot not used in time: capacity lost, never
// added. In fallback the tokens go back to the local share. Refund never
// blocks and is safe for concurrent use; n < 1 does nothing.
func (b *Bucket) Refund(n int) {
	if n < 1 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.settleMode(now)
	b.st.Dispatched -= min(uint64(n), b.st.Dispatched)
	// The tokens were not needed: they come off the demand (net, so
	// even when it was estimated since), the worker is not held by the
	// schedule (the next waiter that is says so again), and the next
	// lease does not grow.
	b.demand -= float64(n)
	b.busyUntil = min(b.busyUntil, now)
	b.expiredOK = false
	if b.mode == ModeFallback {
		b.gate.refund(now, n)
		b.wakeHead()
		return
	}
	left := n
	for left > 0 && len(b.given) > 0 {
		g := &b.given[len(b.given)-1]
		k := min(left, g.n)
		g.n -= k
		b.restore(segment{first: g.first + float64(g.n)*g.cost, cost: g.cost, n: k, start: g.start, end: g.end})
		if g.n == 0 {
			b.given = b.given[:len(b.given)-1]
		}
		left -= k
	}
	b.st.Expired += uint64(left) // handed out too long ago (or in a fallback): not ours to use again
	b.expire(now)
	b.wakeHead()
	kick(b.refill) // idle with slots again: the refiller may give them back
}

func (b *Bucket) wakeHead() {
	if len(b.q) > 0 {
		kick(b.q[0].wake)
	}
}

// expire drops the leased slots that fell due more than slack ago. It
// requires mu held.
func (b *Bucket) expire(now float64) { b.dropBefore(now - b.slack) }

// dropBefore drops the leased slots due before lim. It requires mu held.
func (b *Bucket) dropBefore(lim float64) {
	for len(b.segs) > 0 {
		s := &b.segs[0]
		if s.first >= lim {
			return
		}
		k := s.n
		if s.cost > 0 {
			k = min(k, int(math.Ceil((lim-s.first)/s.cost)))
		}
		s.n -= k
		s.first += float64(k) * s.cost
		b.st.Expired += uint64(k)
		b.expiredOK = false
		if s.n == 0 {
			b.segs = b.segs[1:]
		}
	}
}

// reserved is the number of leased slots not handed out. It requires mu held.
func (b *Bucket) reserved() int {
	n := 0
	for _, s := range b.segs {
		n += s.n
	}
	return n
}

// settleMode ends ModeRejoining when its time is up. It requires mu held.
func (b *Bucket) settleMode(now float64) {
	if b.mode == ModeRejoining && now >= b.rejoinUntil {
		b.mode = ModeRedis
	}
}

// share is the local rate during an outage. It requires mu held.
func (b *Bucket) share() float64 {
	return b.rate / float64(max(b.cfg.ExpectedWorkers, b.workers, 1))
}

// SetRate changes the fleet-wide rate. The shared bucket is settled under
// the old rate at this worker's next Redis call; set the same rate on
// every worker of the fleet.
func (b *Bucket) SetRate(rate float64) error {
	if err := checkRate("rate", rate); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate = rate
	if b.mode != ModeRedis {
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
	s.Waiting = len(b.q)
	if b.mode == ModeFallback {
		s.FallbackSince = b.since
	}
	if b.lastErr != nil {
		s.LastError = b.lastErr.Error()
	}
	return s
}

// Close stops the background goroutine, gives the leased slots not yet
// used back to Redis when it can (one call, bounded by Timeout), and makes
// waiting and future Waits return ErrClosed. It returns once the goroutine
// has stopped. Calling it again does nothing.
func (b *Bucket) Close() {
	b.closeOnce.Do(func() { close(b.closed) })
	<-b.done
}

var (
	_ pacer.Limiter  = (*Bucket)(nil)
	_ pacer.Refunder = (*Bucket)(nil)
)

// gate is a local token bucket kept as a schedule, in local µs. It is the
// fallback at the worker's share. Guarded by Bucket.mu.
type gate struct{ zero, cost, full float64 }

// reset starts the gate full at rate and burst.
func (g *gate) reset(now, rate, burst float64) {
	g.cost = 1e6 / rate
	g.full = burst * g.cost
	g.zero = now - g.full
}

// setRate changes the rate, keeping the balance.
func (g *gate) setRate(now, rate, burst float64) {
	if g.cost == 0 {
		g.reset(now, rate, burst)
		return
	}
	bal := min((now-max(g.zero, now-g.full))/g.cost, burst)
	g.cost = 1e6 / rate
	g.full = burst * g.cost
	g.zero = now - bal*g.cost
}

// take takes up to want tokens that are there at now and returns how many.
func (g *gate) take(now float64, want int) int { return g.takeFrom(now, want, math.Inf(-1)) }

// takeFrom is take for a waiter that slept until the token after from fell
// due: the tokens that fell due while its timer was late are still there,
// even beyond the capacity (as the core's buckets do).
func (g *gate) takeFrom(now float64, want int, from float64) int {
	base := max(g.zero, min(now-g.full, from))
	k := min(want, int((now-base)/g.cost+1e-9))
	if k <= 0 {
		return 0
	}
	g.zero = base + float64(k)*g.cost
	return k
}

// next is when the next token falls due.
func (g *gate) next(now float64) float64 { return max(g.zero, now-g.full) + g.cost }

// refund gives back k tokens, without overfilling.
func (g *gate) refund(now float64, k int) {
	g.zero = max(g.zero-float64(k)*g.cost, now-g.full)
}

// offsetFilter estimates Redis time minus local time from the last few
// calls, trusting the one with the shortest round trip (as NTP does).
type offsetFilter struct {
	off, rtt [8]float64
	n, i     int
}

func (f *offsetFilter) add(off, rtt float64) {
	f.off[f.i], f.rtt[f.i] = off, rtt
	f.i = (f.i + 1) % len(f.off)
	f.n = min(f.n+1, len(f.off))
}

func (f *offsetFilter) best() float64 {
	j := 0
	for i := 1; i < f.n; i++ {
		if f.rtt[i] < f.rtt[j] {
			j = i
		}
	}
	return f.off[j]
}
