// Package redisbucket is a token bucket shared by a whole fleet of worker
// processes, held in Redis: one limit, say 100 requests a second to a
// provider's API, however many workers run. A Bucket implements
// pacer.Limiter, so a pacer.Pacer obeys it after its own ceiling and the
// core stays free of Redis:
//
//	b, err := redisbucket.New(rdb, redisbucket.Config{Key: "sms", Rate: 100})
//	defer b.Close()
//	p, err := pacer.New(pacer.Config{Rate: 100, Limiter: b})
//
// Workers whose Config has the same Key share the limit; the CLI sets Key
// from a worker's fleet setting.
//
// # The shared schedule
//
// The bucket lives in one Redis hash and changes only in one Lua script,
// which reads Redis's own clock (TIME): the workers' clocks do not matter
// and may be skewed. It is kept as a schedule (GCRA), not as a balance:
// slot i of the schedule falls due at a Redis time d_i, consecutive slots
// 1/Rate apart, and a take never reaches back more than Burst slots before
// Redis's now. So at most Burst + Rate × w slots fall due in any window of
// length w, and each slot is handed to one worker only.
//
// # Leases
//
// A worker does not call Redis per job. It leases a run of consecutive
// slots at a time and hands them out locally, each at its own due time
// (converted to the local clock with the offset measured on the fastest
// recent call), so a lease is spread out at the fleet's rate, never burst
// at once. A lease is sized to the worker's recent demand: half
// LeaseTime's worth of it while the worker keeps up (so it uses its slots
// before they expire), twice LeaseTime's worth and growing while the
// schedule holds it back; and never more than LeaseTime's worth of an
// equal share of Rate among the workers seen lately, which keeps
// backlogged workers' shares even. Slots may be leased up to 2 × LeaseTime
// ahead of Redis's now; a worker leases its next run when its leased slots
// reach less than LeaseTime/2 ahead, however many callers wait, so that
// no worker takes the whole schedule ahead from the others. When Redis
// grants nothing (the schedule is taken that far ahead), the worker asks
// again when its lease has come within reach, not at the next slot. A
// busy fleet therefore makes about one Redis call per lease: at 20,000/s
// the bench in bench/fleet measures a few calls per thousand jobs, and
// two workers contending for 40/s with 100 ms leases (2 slots each) about
// one call per two jobs.
//
// Unused slots never become extra tokens. A leased slot not used within
// LeaseTime of its due time (or of its grant, for the burst's slots, which
// were due before it) expires. When a worker goes idle, and when it
// is closed, it gives back the slots it still holds at the end of the
// schedule (if no other worker has leased after them), so the next taker
// gets them; slots it cannot give back expire. Expired slots are capacity
// lost, never capacity added.
//
// # Refunds
//
// A Bucket is a pacer.Refunder: when a permit is cancelled
// (pacer.Permit.Cancel or CancelN, as an adapter does when a long poll
// comes back empty), Refund puts the slots handed out last back in front
// of the leased ones, each at its own due time, so the next Wait uses
// them and an idle or closing worker gives them back to Redis with the
// rest. They expire as any leased slot does, LeaseTime after their due
// time: a worker whose every permit is cancelled costs the fleet about one
// slot per LeaseTime for each permit it holds at once, not its share.
// Refund cannot tell which permit came back and takes back the slots
// handed out last; when those were not the cancelled permit's own (several
// pollers), the cancelled slot is in effect used later than LeaseTime
// after its due time, by up to how long the permit was held. For tokens
// given back, then, the LeaseTime term of the bound below grows by how
// long cancelled permits are held (a long poll's wait).
//
// The guarantee, precisely: in any window of length w the fleet dispatches
// at most 2 × Burst + Rate × (w + LeaseTime + 2ε) tokens through Waits of
// one token, where ε is the error of a worker's clock offset (at most half
// the round trip of its fastest recent call; a Wait of n hands its n
// tokens out together, when the last falls due). Each slot is used no
// earlier than its due time and no later than LeaseTime after its due time
// or its grant, and a grant reaches back at most Burst slots: hence the
// second Burst and the LeaseTime term, which arise only when slots are used
// late (a slow consumer, a stalled process). A fleet that keeps asking uses
// each slot at its due time, gets Rate × t over a time t, and over windows
// of a second and more stays within 1-2 % of Rate × w (see the tests).
//
// # Outage
//
// When a Redis call fails or times out (Config.Timeout), the worker falls
// back to a local bucket at its share of the limit, Rate ÷ max(
// ExpectedWorkers, workers last seen in Redis, 1), drops its leased slots,
// logs a warning with log/slog, and reports ModeFallback, FallbackSince and
// LastError in Stats; Wait never returns a Redis error. Every
// RetryInterval it tries Redis again. When Redis answers, the worker
// rejoins (logged at Info, Stats.Rejoins): for two RetryIntervals
// (ModeRejoining) it leases slots of the shared schedule no faster than
// its local share, and uses them on time, so a worker that rejoined early
// cannot take the whole rate while the others still run on their shares. If the whole fleet loses Redis and
// no more workers run than the divisor above, the fleet stays within Rate
// throughout. A worker cut off from Redis alone adds its share on top of
// what the others share in Redis.
//
// New calls Redis once: if Redis answers with an error (scripting disabled
// or renamed, TIME or another command the script needs denied by ACL), New
// fails with an error wrapping ErrRefused; if Redis cannot be reached, the
// Bucket starts in fallback. Bad settings are errors wrapping
// pacer.ErrInvalid that name the field, its value and what is allowed.
//
// # Redis
//
// Redis 5 or later (or anything that runs its Lua scripts, TIME, HMGET,
// HSET, PEXPIRE, ZADD, ZREMRANGEBYSCORE, ZCARD and ZREM). A fleet uses two
// keys, Prefix+"{"+Key+"}" (a hash) and Prefix+"{"+Key+"}:workers" (a
// sorted set), in one hash slot so Redis Cluster works; both expire when
// the fleet is idle. All workers sharing a Key should use the same Rate and
// Burst: the script settles the bucket under the caller's values, so when
// they differ the last caller wins. The client is any redis.Scripter of
// github.com/redis/go-redis/v9; set its Options.ContextTimeoutEnabled so
// that Config.Timeout bounds each call.
package redisbucket
