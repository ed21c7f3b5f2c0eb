package natsbucket

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/internal/lease"
	"github.com/jobpacer/pacer/pacer"
)

// Mode says where a Bucket's tokens come from.
type Mode int

const (
	// ModeNATS: tokens are slots of the shared schedule in the bucket.
	ModeNATS Mode = iota
	// ModeFallback: NATS is unreachable (or refuses the bucket); tokens
	// come from a local bucket at the worker's share of the rate.
	ModeFallback
	// ModeRejoining: NATS is back; for two RetryIntervals the worker
	// leases no faster than its local share.
	ModeRejoining
)

// String returns "nats", "fallback" or "rejoining".
func (m Mode) String() string {
	switch m {
	case ModeNATS:
		return "nats"
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
	Rate          float64   // the fleet-wide rate, jobs per second
	Workers       int       // workers seen sharing the key at the last call (≥ 1)
	Share         float64   // the local rate during an outage: Rate ÷ max(ExpectedWorkers, Workers, 1)
	Calls         uint64    // lease calls (takes and returns), failed ones included
	Requests      uint64    // NATS requests they made: a read and a write each, more on conflicts, and clock reads
	Conflicts     uint64    // writes that lost the compare-and-set to another worker (and were tried again)
	Errors        uint64    // calls that failed
	Leases        uint64    // calls that granted tokens
	Granted       uint64    // tokens granted
	Dispatched    uint64    // tokens handed out by Wait, less those given back by Refund
	Expired       uint64    // leased tokens dropped unused
	Returned      uint64    // leased tokens given back unused
	Fallbacks     uint64    // times the bucket fell back to its local share
	Rejoins       uint64    // times it rejoined the shared bucket
	FallbackSince time.Time // when the current fallback began; zero if not in fallback
	LastError     string    // the last NATS error, "" if none yet
}

// Bucket is a token bucket shared by every worker whose Config has the same
// Key, held in a JetStream key-value bucket and kept on the server's clock.
// It implements pacer.Limiter and pacer.Refunder:
//
//	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "pacer_fleet"})
//	b, err := natsbucket.New(kv, natsbucket.Config{Key: "sms", Rate: 400})
//	p, err := pacer.New(pacer.Config{Rate: 400, Limiter: b})
//
// A background goroutine makes the NATS calls, so Close it when done. It
// is safe for concurrent use.
type Bucket struct {
	b  *lease.Bucket
	st *store
}

// New returns a Bucket for the fleet limit c in the key-value bucket kv.
// It calls NATS once: if NATS answers that it will not hold the fleet (no
// such bucket, no permission, a key holding something else), New returns
// an error wrapping ErrRefused; if NATS cannot be reached, the Bucket
// starts in ModeFallback, logs it and keeps trying. Bad settings are
// errors wrapping pacer.ErrInvalid that name the field.
func New(kv jetstream.KeyValue, c Config) (*Bucket, error) {
	if kv == nil {
		return nil, invalid("kv", "nil", "a JetStream key-value bucket (jetstream.KeyValue)")
	}
	lc, err := c.lease()
	if err != nil {
		return nil, err
	}
	st := &store{kv: kv, key: c.Prefix + c.Key, clock: lc.Clock, timeout: lc.Timeout,
		clockKey: c.Prefix + c.Key + ".clock." + keySafe(lc.ID)}
	// A bucket that does not exist looks like an outage to a read (no
	// responder answers it); its status says which.
	ctx, cancel := context.WithTimeout(context.Background(), lc.Timeout)
	_, err = kv.Status(ctx)
	cancel()
	st.requests.Add(1)
	if err != nil && refused(err) {
		return nil, fmt.Errorf("%w (bucket %q): %v", ErrRefused, kv.Bucket(), err)
	}
	b, err := lease.New(st, lc)
	if err != nil {
		return nil, fmt.Errorf("%w (bucket %q, key %q): %v", ErrRefused, kv.Bucket(), st.key, err)
	}
	return &Bucket{b: b, st: st}, nil
}

// keySafe maps a worker id to key-value key characters.
func keySafe(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, id)
}

// Wait blocks until n tokens of the fleet's limit are this worker's to
// use, and takes them, in the order callers called. If ctx ends first it
// returns ctx.Err() and takes nothing; after Close it returns ErrClosed.
// Wait never returns a NATS error: when NATS fails the Bucket falls back
// to its local share (see Stats).
func (b *Bucket) Wait(ctx context.Context, n int) error { return b.b.Wait(ctx, n) }

// Refund gives back n tokens that Waits handed out for jobs that never ran
// (pacer.Permit.Cancel calls it): as redisbucket.Bucket.Refund does.
func (b *Bucket) Refund(n int) { b.b.Refund(n) }

// SetRate changes the fleet-wide rate; set the same rate on every worker.
func (b *Bucket) SetRate(rate float64) error { return b.b.SetRate(rate) }

// Stats returns a snapshot of the bucket's state and counters.
func (b *Bucket) Stats() Stats {
	s := b.b.Stats()
	return Stats{
		Mode: Mode(s.Mode), Rate: s.Rate, Workers: s.Workers, Share: s.Share,
		Calls: s.Calls, Requests: b.st.requests.Load(), Conflicts: b.st.conflicts.Load(),
		Errors: s.Errors, Leases: s.Leases, Granted: s.Granted,
		Dispatched: s.Dispatched, Expired: s.Expired, Returned: s.Returned,
		Fallbacks: s.Fallbacks, Rejoins: s.Rejoins, FallbackSince: s.FallbackSince, LastError: s.LastError,
	}
}

// Close stops the background goroutine, gives the leased slots not yet
// used back when it can (bounded by Timeout), deletes this worker's clock
// key, and makes waiting and future Waits return ErrClosed. Calling it
// again does nothing.
func (b *Bucket) Close() {
	b.b.Close()
	b.st.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), b.st.timeout)
		defer cancel()
		b.st.forget(ctx)
	})
}

var (
	_ pacer.Limiter  = (*Bucket)(nil)
	_ pacer.Refunder = (*Bucket)(nil)
)
