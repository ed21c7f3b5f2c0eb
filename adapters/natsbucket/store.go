package natsbucket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/internal/lease"
	"github.com/jobpacer/pacer/pacer"
)

// state is the fleet's shared schedule, the value of the bucket's key
// (JSON). Zero is kept as the exact decimal string a return compares.
type state struct {
	Zero    string             `json:"zero,omitempty"`
	Rate    float64            `json:"rate,omitempty"`
	Burst   float64            `json:"burst,omitempty"`
	Workers map[string]float64 `json:"workers,omitempty"` // id → last seen, server µs
}

// store is the lease machinery's Store on a JetStream key-value bucket:
// each call reads the key, computes the new schedule exactly as
// redisbucket's script does, and writes it with the revision it read
// (compare-and-set), again on a conflict.
type store struct {
	kv       jetstream.KeyValue
	key      string
	clockKey string // this worker's own key, written to read the server's clock
	clock    pacer.Clock
	timeout  time.Duration

	closeOnce sync.Once

	mu    sync.Mutex // guards the clock offset
	off   offsets
	offAt time.Time // local time of the last offset sample

	requests  atomic.Uint64 // requests to NATS (gets, updates, clock reads)
	conflicts atomic.Uint64 // updates that lost the compare-and-set
}

// maxTries bounds a call's compare-and-set attempts; a fleet whose workers
// lease about once per LeaseTime each conflicts rarely.
const maxTries = 16

// clockEvery is how often a worker reads the server's clock again: clocks
// drift by parts per million, so the offset holds for seconds.
const clockEvery = 5 * time.Second

// errCorrupt is wrapped when the key holds something that is not a
// schedule: a store that refuses the bucket.
var errCorrupt = errors.New("natsbucket: the key holds no fleet schedule")

// local is the local clock in µs (Unix time).
func (s *store) local() float64 { return float64(s.clock.Now().UnixNano()) / 1e3 }

// now is the server's time in µs, as the offset estimates it.
func (s *store) now() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local() + s.off.best()
}

// readClock measures the offset of the server's clock, when none is known
// or the last is clockEvery old: it writes this worker's clock key and
// reads back the time the server stamped on it. The stamp lies between the
// write's start and its ack, so the error is at most half the round trip.
func (s *store) readClock(ctx context.Context) error {
	s.mu.Lock()
	fresh := s.off.n > 0 && s.clock.Now().Sub(s.offAt) < clockEvery
	s.mu.Unlock()
	if fresh {
		return nil
	}
	t0 := s.local()
	s.requests.Add(1)
	rev, err := s.kv.Put(ctx, s.clockKey, nil)
	t1 := s.local()
	if err != nil {
		return err
	}
	s.requests.Add(1)
	e, err := s.kv.Get(ctx, s.clockKey)
	if err != nil {
		return err
	}
	if e.Revision() != rev {
		return nil // written again meanwhile (another Bucket with the same id?): try later
	}
	ts := float64(e.Created().UnixNano()) / 1e3
	s.mu.Lock()
	s.off.add(ts-(t0+t1)/2, t1-t0)
	s.offAt = s.clock.Now()
	s.mu.Unlock()
	return nil
}

func fmtf(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// load reads the schedule: its state and revision (0: no key yet).
func (s *store) load(ctx context.Context) (state, uint64, error) {
	s.requests.Add(1)
	e, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return state{}, 0, nil
	}
	if err != nil {
		return state{}, 0, err
	}
	var st state
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return state{}, 0, fmt.Errorf("%w: key %q: %v", errCorrupt, s.key, err)
	}
	return st, e.Revision(), nil
}

// save writes st if the key is still at rev; false on a conflict.
func (s *store) save(ctx context.Context, st state, rev uint64) (bool, error) {
	v, err := json.Marshal(st)
	if err != nil {
		return false, err
	}
	s.requests.Add(1)
	if rev == 0 {
		_, err = s.kv.Create(ctx, s.key, v)
	} else {
		_, err = s.kv.Update(ctx, s.key, v, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		s.conflicts.Add(1)
		return false, nil
	}
	return err == nil, err
}

// apply runs op on the schedule under compare-and-set: read, compute on
// the server's clock, write with the revision read; again on a conflict.
func (s *store) apply(ctx context.Context, a lease.Args, op func(st *state, sch *schedule) lease.Reply) (lease.Reply, error) {
	if err := s.readClock(ctx); err != nil {
		return lease.Reply{}, err
	}
	for range maxTries {
		st, rev, err := s.load(ctx)
		if err != nil {
			return lease.Reply{}, err
		}
		sch := settle(&st, a, s.now())
		r := op(&st, sch)
		r.Now = sch.now
		ok, err := s.save(ctx, st, rev)
		if err != nil {
			return lease.Reply{}, err
		}
		if ok {
			return r, nil
		}
	}
	return lease.Reply{}, fmt.Errorf("natsbucket: key %q: %d compare-and-set conflicts in a row", s.key, maxTries)
}

// schedule is the state settled for one call, in server µs.
type schedule struct {
	now, cost, full, zero float64
	dirty                 bool // the caller's rate or burst differ from the stored ones
}

// settle reads the stored schedule under the caller's rate and burst
// (keeping the bucket's balance when they changed) and records a's worker
// as seen now, forgetting the workers unseen for a.Window.
func settle(st *state, a lease.Args, now float64) *schedule {
	sch := &schedule{now: now, cost: 1e6 / a.Rate}
	sch.full = a.Burst * sch.cost
	zero, err := strconv.ParseFloat(st.Zero, 64)
	switch {
	case st.Zero == "" || err != nil:
		zero = now - sch.full
	case st.Rate != a.Rate || st.Burst != a.Burst:
		oc := 1e6 / st.Rate
		bal := (now - math.Max(zero, now-st.Burst*oc)) / oc
		zero = now - math.Min(bal, a.Burst)*sch.cost
		sch.dirty = true
	}
	sch.zero = zero
	if st.Zero == "" || sch.dirty {
		st.Zero = fmtf(zero)
	}
	st.Rate, st.Burst = a.Rate, a.Burst
	if st.Workers == nil {
		st.Workers = map[string]float64{}
	}
	for id, seen := range st.Workers {
		if seen < now-a.Window {
			delete(st.Workers, id)
		}
	}
	st.Workers[a.Worker] = now
	return sch
}

func (s *store) Take(ctx context.Context, a lease.Args, want int, ahead float64) (lease.Reply, error) {
	return s.apply(ctx, a, func(st *state, sch *schedule) lease.Reply {
		z0 := math.Max(sch.zero, sch.now-sch.full)
		k := int(math.Floor((sch.now+ahead-z0)/sch.cost + 1e-9))
		k = max(0, min(k, want))
		r := lease.Reply{K: k, Z0: z0, Start: fmtf(z0), Workers: len(st.Workers)}
		if k > 0 {
			st.Zero = fmtf(z0 + float64(k)*sch.cost)
			r.Z0, _ = strconv.ParseFloat(r.Start, 64)
		} else {
			r.Retry = z0 + sch.cost - ahead - sch.now
		}
		r.Zero = st.Zero
		return r
	})
}

func (s *store) Return(ctx context.Context, a lease.Args, end string, m int, leaving bool) (lease.Reply, error) {
	return s.apply(ctx, a, func(st *state, sch *schedule) lease.Reply {
		if leaving {
			delete(st.Workers, a.Worker)
		}
		r := lease.Reply{Workers: len(st.Workers)}
		if st.Zero == end && !sch.dirty {
			st.Zero = fmtf(math.Max(sch.zero-float64(m)*sch.cost, sch.now-sch.full))
			r.K = 1
		}
		r.Zero = st.Zero
		return r
	})
}

// forget deletes this worker's clock key (at Close).
func (s *store) forget(ctx context.Context) {
	s.requests.Add(1)
	_ = s.kv.Purge(ctx, s.clockKey)
}

// refused reports whether err says NATS will never hold the bucket: no
// such key-value bucket, no permission, a key that holds something else.
func refused(err error) bool {
	return errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrBadBucket) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, errCorrupt)
}

// offsets estimates the server's time minus local time from the last few
// clock reads, trusting the one with the shortest round trip.
type offsets struct {
	off, rtt [4]float64
	n, i     int
}

func (f *offsets) add(off, rtt float64) {
	f.off[f.i], f.rtt[f.i] = off, rtt
	f.i = (f.i + 1) % len(f.off)
	f.n = min(f.n+1, len(f.off))
}

func (f *offsets) best() float64 {
	if f.n == 0 {
		return 0
	}
	j := 0
	for i := 1; i < f.n; i++ {
		if f.rtt[i] < f.rtt[j] {
			j = i
		}
	}
	return f.off[j]
}
