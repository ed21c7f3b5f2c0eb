package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Mode says where a Bucket's tokens come from.
type Mode int

const (
	// ModeShared: tokens are slots of the shared schedule in the store.
	ModeShared Mode = iota
	// ModeFallback: the store is unreachable (or refuses the bucket);
	// tokens come from a local bucket at the worker's share of the rate.
	ModeFallback
	// ModeRejoining: the store is back; for two RetryIntervals the worker
	// leases slots no faster than its local share, so that a worker that
	// rejoined early cannot take the whole rate while the others still
	// run on their shares.
	ModeRejoining
)

// Stats is a snapshot of a Bucket.
type Stats struct {
	Mode          Mode      // where tokens come from now
	Rate          float64   // the fleet-wide rate, jobs per second
	Workers       int       // workers seen sharing the key at the last store call (≥ 1)
	Share         float64   // the local rate during an outage: Rate ÷ max(ExpectedWorkers, Workers, 1)
	Calls         uint64    // calls to the store, failed ones included
	Errors        uint64    // calls that failed
	Leases        uint64    // calls that granted tokens
	Granted       uint64    // tokens granted by the store
	Dispatched    uint64    // tokens handed out by Wait, less those given back by Refund
	Expired       uint64    // leased tokens dropped unused: too late, left behind by a fallback, or refunded too late to be used again
	Returned      uint64    // leased tokens given back to the store unused
	Fallbacks     uint64    // times the bucket fell back to its local share
	Rejoins       uint64    // times it rejoined the shared bucket
	FallbackSince time.Time // when the current fallback began; zero if not in fallback
	LastError     string    // the last store error, "" if none yet
}

// Bucket is the lease machinery of a fleet limit: a token bucket shared by
// every worker whose Config has the same Key, held in a Store and kept on
// the store's clock. An adapter (redisbucket, natsbucket) wraps it with its
// store. It is safe for concurrent use.
type Bucket struct {
	store  Store
	cfg    Config
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

	mu          sync.Mutex // guards the fields below; never held across a store call or a wait
	rate        float64
	mode        Mode
	segs        []segment // leased slots not yet handed out, in order of due time
	given       []segment // slots handed out lately, in the order they were: what Refund may put back
	q           []*waiter // Wait callers, FIFO; q[0] takes tokens
	workers     int
	gate        gate    // the local share: the fallback's bucket, and while rejoining a limit on leasing
	rejoinUntil float64 // end of ModeRejoining
	nextTry     float64 // no store call before this (after a failure or an empty grant)
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
	start string // the store's zero before the take ("" for slots given back by a cancelled Wait)
	end   string // the store's zero right after the take; "" when these slots may not be returned
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

// New returns a Bucket for the fleet limit c, held in store; c must have
// been filled (Config.Fill). It calls the store once: if the call fails
// with an error c.Refused reports, New returns that error and no Bucket;
// any other failure starts the Bucket in ModeFallback, logged, and it
// keeps trying.
func New(store Store, c Config) (*Bucket, error) {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	b := &Bucket{
		store:  store,
		cfg:    c,
		worker: c.ID,
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
		mode:   ModeShared,
	}
	b.workers = 1
	b.expiredOK = true
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	t0 := b.now()
	r, err := b.take(ctx, b.rate, 0)
	t1 := b.now()
	cancel()
	b.mu.Lock()
	b.st.Calls++
	if err != nil {
		if b.refused(err) {
			b.mu.Unlock()
			return nil, err
		}
		b.fail(t1, err)
	} else {
		b.observe(r, t0, t1)
	}
	b.mu.Unlock()
	go b.run()
	return b, nil
}

// WorkerID returns a new worker id: host, process id and a random part.
func WorkerID() string {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(r[:])
}

// now is the local time in µs since epoch.
func (b *Bucket) now() float64 { return float64(b.clock.Now().Sub(b.epoch)) / 1e3 }

// args are the arguments of every store call.
func (b *Bucket) args(rate float64) Args {
	return Args{Rate: rate, Burst: b.cfg.Burst, Worker: b.worker, Window: math.Ceil(b.window)}
}

// take leases up to want slots (want 0: only check in).
func (b *Bucket) take(ctx context.Context, rate float64, want int) (Reply, error) {
	return b.store.Take(ctx, b.args(rate), want, b.ahead)
}

// refused reports whether err is the store refusing the bucket.
func (b *Bucket) refused(err error) bool { return b.cfg.Refused != nil && b.cfg.Refused(err) }

// Wait blocks until n tokens of the fleet's limit are this worker's to
// use, and takes them. Callers are served in the order they called. If
// ctx ends first it returns ctx.Err() and takes nothing (the slots it had
// set aside go back to the next caller); after Close it returns ErrClosed.
// Wait never returns a store error: when the store fails the Bucket falls back
// to its local share (see Stats).
func (b *Bucket) Wait(ctx context.Context, n int) error {
	if n < 1 {
		return b.cfg.invalid("n", n, "≥ 1")
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
		return b.cfg.ErrClosed
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
			err = b.cfg.ErrClosed
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
		if b.mode == ModeShared {
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

var (
	_ pacer.Limiter  = (*Bucket)(nil)
	_ pacer.Refunder = (*Bucket)(nil)
)

// Waiting returns how many Wait calls b holds (tests use it to know that
// a Wait is blocked).
func (b *Bucket) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q)
}

// Dur is the µs-to-Duration conversion of Wait's timers, saturating.
func Dur(us float64) time.Duration { return dur(us) }
