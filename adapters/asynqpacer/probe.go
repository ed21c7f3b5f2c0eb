package asynqpacer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/pacer"
)

// ErrQueueNotFound is wrapped by the error Probe.Backlog returns for a
// queue Asynq does not know: no task was ever enqueued to it, or it was
// deleted.
var ErrQueueNotFound = errors.New("asynqpacer: queue not found")

// Asynq v0.26's Redis layout (internal/base): every queue is a member of
// the set asynq:queues; its pending task IDs are a list at
// asynq:{<queue>}:pending, pushed on the left and taken from the right, so
// the oldest is at index -1; each task is a hash at asynq:{<queue>}:t:<id>
// whose pending_since field is the Unix time in nanoseconds at which it
// became pending.
const allQueuesKey = "asynq:queues"

func pendingKey(queue string) string    { return "asynq:{" + queue + "}:pending" }
func taskKeyPrefix(queue string) string { return "asynq:{" + queue + "}:t:" }

// backlogScript reads one queue's pending count and the pending_since of its
// oldest pending task (false when there is none). It touches only keys of
// one queue, so it runs on Redis Cluster as Asynq's own scripts do.
//
// KEYS[1]: asynq:{<queue>}:pending; ARGV[1]: asynq:{<queue>}:t:
var backlogScript = redis.NewScript(`
local n = redis.call("LLEN", KEYS[1])
if n == 0 then
	return {0, false}
end
local id = redis.call("LINDEX", KEYS[1], -1)
if not id then
	return {n, false}
end
return {n, redis.call("HGET", ARGV[1] .. id, "pending_since")}
`)

// Probe is a pacer.Probe that reads the backlog of one or more Asynq
// queues: the sum of their pending counts and the age of the oldest pending
// task among them. Each Backlog is one round trip to Redis: a pipeline of
// one small script per queue (LLEN and LINDEX of the pending list, HGET of
// the oldest task's pending_since), plus SISMEMBER asynq:queues for a queue
// not yet seen to exist. Inspector.GetQueueInfo, by contrast, runs Asynq's
// statistics script and samples MEMORY USAGE of up to 20 tasks of every
// task state on each call.
//
// A Probe is safe for concurrent use. Make one with NewProbe or
// NewProbeFromRedisClient.
type Probe struct {
	client    redis.UniversalClient
	ownClient bool
	queues    []string
	now       func() time.Time

	mu    sync.Mutex      // guards known
	known map[string]bool // queues seen in asynq:queues
}

var _ pacer.Probe = (*Probe)(nil)

// NewProbe returns a Probe reading the given queues through a Redis
// client made from r, the asynq.RedisConnOpt the server uses: the source
// the tasks come from, as natspacer.NewProbe takes the consumer. Close
// the probe to close that client. It does not connect: a Redis that is
// down shows as errors from Backlog.
func NewProbe(r asynq.RedisConnOpt, queues ...string) (*Probe, error) {
	if r == nil {
		return nil, invalid("redis option", "nil", "an asynq.RedisConnOpt such as asynq.RedisClientOpt{Addr: ...}")
	}
	if err := checkQueues(queues); err != nil {
		return nil, err
	}
	c, err := makeClient(r)
	if err != nil {
		return nil, err
	}
	return makeProbe(c, true, queues), nil
}

// makeClient makes the probe's client from r. For an asynq.RedisClientOpt
// it makes the client Asynq would, except that each read is tried once: the
// controller reads again next period, and go-redis's default retries (3 per
// command, 5 dials per connection) would outlast the period and hide the
// cause ("connection refused") behind the period's timeout.
func makeClient(r asynq.RedisConnOpt) (redis.UniversalClient, error) {
	var o *asynq.RedisClientOpt
	switch opt := r.(type) {
	case asynq.RedisClientOpt:
		o = &opt
	case *asynq.RedisClientOpt:
		o = opt
	}
	if o != nil {
		return redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, TLSConfig: o.TLSConfig,
			MaxRetries: -1, DialerRetries: 1,
		}), nil
	}
	c, ok := r.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, invalid("redis option", fmt.Sprintf("%T", r), "an asynq.RedisConnOpt whose MakeRedisClient returns a go-redis v9 UniversalClient")
	}
	return c, nil
}

// NewProbeFromRedisClient returns a Probe reading the given queues
// through c, which the caller keeps and closes. c's own retry settings
// apply to each read (NewProbe's client tries each read once).
func NewProbeFromRedisClient(c redis.UniversalClient, queues ...string) (*Probe, error) {
	if c == nil {
		return nil, invalid("client", "nil", "a go-redis v9 client")
	}
	if err := checkQueues(queues); err != nil {
		return nil, err
	}
	return makeProbe(c, false, queues), nil
}

func checkQueues(queues []string) error {
	if len(queues) == 0 {
		return invalid("queues", "[]", "one or more Asynq queue names")
	}
	seen := make(map[string]bool, len(queues))
	for i, q := range queues {
		if strings.TrimSpace(q) == "" {
			return invalid(fmt.Sprintf("queues[%d]", i), fmt.Sprintf("%q", q), "a non-empty queue name")
		}
		if seen[q] {
			return invalid(fmt.Sprintf("queues[%d]", i), fmt.Sprintf("%q", q), "a queue not already listed")
		}
		seen[q] = true
	}
	return nil
}

func makeProbe(c redis.UniversalClient, own bool, queues []string) *Probe {
	return &Probe{
		client: c, ownClient: own, queues: append([]string(nil), queues...),
		now: time.Now, known: make(map[string]bool),
	}
}

// Queues returns the names of the queues the probe reads.
func (q *Probe) Queues() []string { return append([]string(nil), q.queues...) }

// Backlog returns the pending count summed over the probe's queues and the
// age of the oldest pending task among them. It makes one round trip to
// Redis and returns ctx's error if ctx ends first. A queue Asynq does not
// know is an error wrapping ErrQueueNotFound; a Redis that cannot be reached
// is an error naming the queues and the cause. Safe for concurrent use.
func (q *Probe) Backlog(ctx context.Context) (pacer.Backlog, error) {
	q.mu.Lock()
	var check []string
	for _, name := range q.queues {
		if !q.known[name] {
			check = append(check, name)
		}
	}
	q.mu.Unlock()

	pipe := q.client.Pipeline()
	exists := make([]*redis.BoolCmd, len(check))
	for i, name := range check {
		exists[i] = pipe.SIsMember(ctx, allQueuesKey, name)
	}
	reads := make([]*redis.Cmd, len(q.queues))
	for i, name := range q.queues {
		// EVAL rather than EVALSHA: the script is a few hundred bytes, and
		// a restarted Redis has forgotten every loaded script.
		reads[i] = backlogScript.Eval(ctx, pipe, []string{pendingKey(name)}, taskKeyPrefix(name))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return pacer.Backlog{}, fmt.Errorf("asynqpacer: reading the backlog of queues %q: %w", q.queues, err)
	}
	for i, name := range check {
		if !exists[i].Val() {
			return pacer.Backlog{}, fmt.Errorf("%w: %q is not in %s (no task was ever enqueued to it, or it was deleted)", ErrQueueNotFound, name, allQueuesKey)
		}
	}
	if len(check) > 0 {
		q.mu.Lock()
		for _, name := range check {
			q.known[name] = true
		}
		q.mu.Unlock()
	}

	now := q.now()
	var b pacer.Backlog
	for i, name := range q.queues {
		vals, err := reads[i].Slice()
		if err != nil || len(vals) != 2 {
			return pacer.Backlog{}, fmt.Errorf("asynqpacer: reading the backlog of queue %q: unexpected reply %v: %v", name, vals, err)
		}
		n, ok := vals[0].(int64)
		if !ok {
			return pacer.Backlog{}, fmt.Errorf("asynqpacer: reading the backlog of queue %q: pending count %v (%T), want an integer", name, vals[0], vals[0])
		}
		b.Pending += n
		since, ok := vals[1].(string)
		if !ok {
			continue // empty queue, or the oldest task vanished meanwhile
		}
		ns, err := strconv.ParseInt(since, 10, 64)
		if err != nil {
			return pacer.Backlog{}, fmt.Errorf("asynqpacer: reading the backlog of queue %q: pending_since = %q, want Unix nanoseconds", name, since)
		}
		b.OldestAge = max(b.OldestAge, now.Sub(time.Unix(0, ns)))
	}
	return b, nil
}

// Close closes the Redis client the probe made (NewProbe); a probe made
// by NewProbeFromRedisClient leaves its client open.
func (q *Probe) Close() error {
	if q.ownClient {
		return q.client.Close()
	}
	return nil
}
