package redisbucket

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jobpacer/pacer/adapters/internal/lease"
	"github.com/redis/go-redis/v9"
)

// bucketScript is the one script that keeps the shared bucket. Time is
// Redis's (TIME), in microseconds; the bucket is a schedule (GCRA): "zero"
// is the instant at which the bucket was, or will be, empty. A take of k
// tokens hands out the k slots after max(zero, now - burst×cost), one cost
// apart, and moves zero past them; slots may lie up to "ahead" in the
// future, which is how a lease reserves the worker's next stretch of the
// schedule. A return moves zero back over the tail of the caller's own
// take, if nothing was taken after it.
//
// KEYS[1] bucket hash (zero, rate, burst); KEYS[2] workers zset (id → last
// seen). ARGV: op, rate, burst, worker id, active window µs, then
//
//	take:   want, ahead µs          → {k, z0, zero, now, workers, retry µs}
//	return: end (zero after the take, as returned), m, leave (0|1)
//	                                → {1|0, "", zero, now, workers, "0"}
//
// Numbers cross as strings formatted %.17g, which round-trip exactly.
const bucketScript = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op, rate, burst = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cost = 1000000 / rate
local full = burst * cost
local function fmt(x) return string.format('%.17g', x) end
local h = redis.call('HMGET', KEYS[1], 'zero', 'rate', 'burst')
local zero = tonumber(h[1])
local dirty = false
if zero == nil then
  zero = now - full
elseif (h[2] and tonumber(h[2]) ~= rate) or (h[3] and tonumber(h[3]) ~= burst) then
  local oc = 1000000 / tonumber(h[2] or rate)
  local bal = (now - math.max(zero, now - tonumber(h[3] or burst) * oc)) / oc
  zero = now - math.min(bal, burst) * cost
  dirty = true
end
local window = tonumber(ARGV[5])
local function save(z)
  redis.call('HSET', KEYS[1], 'zero', fmt(z), 'rate', ARGV[2], 'burst', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil((z - now + full) / 1000) + 1000)
end
if op == 'take' then
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  redis.call('PEXPIRE', KEYS[2], math.ceil(window / 1000))
  local workers = redis.call('ZCARD', KEYS[2])
  local want, ahead = tonumber(ARGV[6]), tonumber(ARGV[7])
  local z0 = math.max(zero, now - full)
  local k = math.floor((now + ahead - z0) / cost + 1e-9)
  if k > want then k = want end
  if k < 0 then k = 0 end
  if k > 0 then
    local nz = z0 + k * cost
    save(nz)
    return {k, fmt(z0), fmt(nz), fmt(now), workers, '0'}
  end
  if dirty then save(zero) end
  return {0, fmt(z0), fmt(zero), fmt(now), workers, fmt(z0 + cost - ahead - now)}
elseif op == 'return' then
  if ARGV[8] == '1' then redis.call('ZREM', KEYS[2], ARGV[4]) end
  local workers = redis.call('ZCARD', KEYS[2])
  if h[1] == ARGV[6] and not dirty then
    local nz = math.max(zero - tonumber(ARGV[7]) * cost, now - full)
    save(nz)
    return {1, '', fmt(nz), fmt(now), workers, '0'}
  end
  return {0, '', fmt(zero), fmt(now), workers, '0'}
end
return redis.error_reply('redisbucket: unknown op ' .. tostring(op))
`

var script = redis.NewScript(bucketScript)

// store is the lease machinery's Store on Redis: the script.
type store struct {
	rdb  redis.Scripter
	keys []string
}

// fmtf formats x for the script: plain decimals, which every Lua reads.
func fmtf(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func (s *store) call(ctx context.Context, op string, a lease.Args, args ...any) (lease.Reply, error) {
	argv := append([]any{op, fmtf(a.Rate), fmtf(a.Burst), a.Worker, fmtf(a.Window)}, args...)
	for i, x := range argv {
		if f, ok := x.(float64); ok {
			argv[i] = fmtf(f)
		}
	}
	v, err := script.Run(ctx, s.rdb, s.keys, argv...).Result()
	if err != nil {
		return lease.Reply{}, err
	}
	return parseReply(v)
}

func (s *store) Take(ctx context.Context, a lease.Args, want int, ahead float64) (lease.Reply, error) {
	return s.call(ctx, "take", a, want, ahead)
}

func (s *store) Return(ctx context.Context, a lease.Args, end string, m int, leaving bool) (lease.Reply, error) {
	leave := "0"
	if leaving {
		leave = "1"
	}
	return s.call(ctx, "return", a, end, m, leave)
}

func parseReply(v any) (lease.Reply, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 6 {
		return lease.Reply{}, fmt.Errorf("redisbucket: unexpected script reply %#v", v)
	}
	var r lease.Reply
	var err error
	num := func(x any) float64 {
		if err != nil {
			return 0
		}
		switch x := x.(type) {
		case int64:
			return float64(x)
		case string:
			if x == "" {
				return 0
			}
			var f float64
			f, err = strconv.ParseFloat(x, 64)
			return f
		}
		err = fmt.Errorf("redisbucket: unexpected value %#v in script reply", x)
		return 0
	}
	r.K = int(num(a[0]))
	r.Z0 = num(a[1])
	r.Start, _ = a[1].(string)
	r.Zero, _ = a[2].(string)
	r.Now = num(a[3])
	r.Workers = int(num(a[4]))
	r.Retry = num(a[5])
	return r, err
}

// transient reports whether err is a Redis error reply that says "not now"
// rather than "never": the server is loading, busy, failing over.
func transient(err error) bool {
	for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// refused reports whether err is Redis refusing the script itself (an
// error reply that is not transient), as opposed to Redis being away.
func refused(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) || transient(err) {
		return false
	}
	// A client-side "redis: client is closed" is not a server reply.
	return !strings.HasPrefix(err.Error(), "redis: ")
}
