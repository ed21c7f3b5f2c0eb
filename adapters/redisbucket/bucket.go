package redisbucket

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jobpacer/pacer/adapters/internal/lease"
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
	b *lease.Bucket
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
	lc, err := c.lease()
	if err != nil {
		return nil, err
	}
	base := c.Prefix + "{" + c.Key + "}"
	st := &store{rdb: rdb, keys: []string{base, base + ":workers"}}
	b, err := lease.New(st, lc)
	if err != nil {
		return nil, fmt.Errorf("%w (key %q, EVALSHA/EVAL of a script using TIME, HMGET, HSET, ZADD, ZCARD, PEXPIRE): %v", ErrRefused, c.Key, err)
	}
	return &Bucket{b: b}, nil
}

// Wait blocks until n tokens of the fleet's limit are this worker's to
// use, and takes them. Callers are served in the order they called. If
// ctx ends first it returns ctx.Err() and takes nothing (the slots it had
// set aside go back to the next caller); after Close it returns ErrClosed.
// Wait never returns a Redis error: when Redis fails the Bucket falls back
// to its local share (see Stats).
func (b *Bucket) Wait(ctx context.Context, n int) error { return b.b.Wait(ctx, n) }

// Refund gives back n tokens that Waits handed out for jobs that never
// ran; pacer.Permit.Cancel and CancelN call it (see pacer.Refunder). The
// slots handed out last are put back in front of the leased slots, each
// at its own due time, so the next Wait gets them, and an idle or closing
// worker gives them back to Redis with the rest of its leases. A slot
// refunded more than LeaseTime after its due time is lost (counted in
// Stats.Expired), as any slot not used in time: capacity lost, never
// added. In fallback the tokens go back to the local share. Refund never
// blocks and is safe for concurrent use; n < 1 does nothing.
func (b *Bucket) Refund(n int) { b.b.Refund(n) }

// SetRate changes the fleet-wide rate. The shared bucket is settled under
// the old rate at this worker's next Redis call; set the same rate on
// every worker of the fleet.
func (b *Bucket) SetRate(rate float64) error { return b.b.SetRate(rate) }

// Stats returns a snapshot of the bucket's state and counters.
func (b *Bucket) Stats() Stats {
	s := b.b.Stats()
	return Stats{
		Mode: Mode(s.Mode), Rate: s.Rate, Workers: s.Workers, Share: s.Share,
		Calls: s.Calls, Errors: s.Errors, Leases: s.Leases, Granted: s.Granted,
		Dispatched: s.Dispatched, Expired: s.Expired, Returned: s.Returned,
		Fallbacks: s.Fallbacks, Rejoins: s.Rejoins, FallbackSince: s.FallbackSince, LastError: s.LastError,
		Waiting: b.b.Waiting(),
	}
}

// Close stops the background goroutine, gives the leased slots not yet
// used back to Redis when it can (one call, bounded by Timeout), and makes
// waiting and future Waits return ErrClosed. It returns once the goroutine
// has stopped. Calling it again does nothing.
func (b *Bucket) Close() { b.b.Close() }

var (
	_ pacer.Limiter  = (*Bucket)(nil)
	_ pacer.Refunder = (*Bucket)(nil)
)
