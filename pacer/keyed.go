package pacer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrTooManyKeys is returned by Keyed.Acquire (and makes TryAcquire fail)
// for a key not yet held while KeyedConfig.MaxKeys keys are held and none
// has been idle for IdleAfter.
var ErrTooManyKeys = errors.New("pacer: too many keys")

// keyShards is the number of shards of the key map: a power of two.
const keyShards = 64

// Keyed paces the jobs of many keys (tenants, customers, destinations)
// under one worker ceiling. Each key has its own pace: its ceiling
// (KeyLimits.Rate), lowered by what the key's downstream takes as the
// key learns it from pushback — a Throttled outcome of key A cuts A's
// pace alone, as a Pacer's pace is cut (docs/capacity.md), and probes
// back up. The worker's ceiling (KeyedConfig.Rate) is shared max-min
// fairly, by weight, among the keys whose callers wait: a key that asks
// for more than its share gets its share, a key that asks for less (or
// whose own pace is lower) gets what it asks, and what it leaves goes to
// the others. See docs/keys.md.
//
// Callers who wait in Acquire are served in start-time fair order
// (start-time fair queuing over the keys): a key's next job is tagged
// max(V, F) where V is the tag of the last job dispatched and F the end
// of the key's last job (its tag plus n ÷ weight), and the lowest tag
// goes first as soon as the worker's ceiling and the key's own pace allow
// it. A caller that finds no caller waiting takes its permit at once,
// without the queue. TryAcquire never waits, and fails while callers of
// its key or of the fair queue wait: fairness is between callers who
// wait.
//
// Memory is bounded: a key unused for IdleAfter is forgotten by Run (and
// when MaxKeys is reached); a new key beyond MaxKeys is refused with
// ErrTooManyKeys. A key costs about 450 bytes while held.
//
// A Keyed is safe for concurrent use. Make one with NewKeyed.
type Keyed struct {
	cfg    KeyedConfig // set by NewKeyed; Key and Keys change under lim
	global sched       // the worker's ceiling; its own queue is unused
	seed   maphash.Seed
	shards [keyShards]keyShard

	live     atomic.Int64
	evicted  atomic.Uint64
	refused  atomic.Uint64
	misuse   atomic.Uint64
	queued   atomic.Int64 // callers waiting in the fair queue, all keys
	slab     atomic.Pointer[permitSlab]
	sweptAt  atomic.Int64 // ticks of the last sweep of idle keys
	refuseAt atomic.Int64 // ticks of the last log line of a refused key

	lim sync.RWMutex // guards cfg.Key and cfg.Keys
	fq  fairQueue
}

type keyShard struct {
	mu sync.RWMutex
	m  map[string]*keyState
	_  [32]byte
}

// NewKeyed returns a Keyed pacer configured by c, or an error that names
// the first bad field of c.
func NewKeyed(c KeyedConfig) (*Keyed, error) {
	if err := c.fill(); err != nil {
		return nil, err
	}
	c.Keys = maps.Clone(c.Keys)
	kp := &Keyed{cfg: c, seed: maphash.MakeSeed()}
	kp.global.init(c.Clock, c.Rate, c.Burst)
	for i := range kp.shards {
		kp.shards[i].m = make(map[string]*keyState)
	}
	kp.fq.kick = make(chan struct{}, 1)
	kp.sweptAt.Store(kp.global.now())
	kp.refuseAt.Store(math.MinInt64 / 2)
	return kp, nil
}

// Acquire waits until n jobs of key may start: the key's own pace, then
// its fair share of the worker's ceiling. It returns ctx.Err() if ctx
// ends first, taking nothing; ErrClosed after Close; ErrTooManyKeys for a
// new key past MaxKeys. n = 0 is granted at once; n must be at most the
// worker's and the key's burst (an error wrapping ErrInvalid otherwise).
func (kp *Keyed) Acquire(ctx context.Context, key string, n int) (*Permit, error) {
	ks, err := kp.prepare(key, n)
	if ks == nil {
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		return noJobs, nil
	}
	if kp.queued.Load() == 0 && ks.waiting.Load() == 0 {
		if pm, ok := kp.takeNow(ks, n); ok {
			return pm, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return kp.wait(ctx, ks, n)
}

// TryAcquire is Acquire without waiting: it returns a permit for n jobs
// of key and true if they may start now, or nil and false and takes
// nothing. It fails while callers wait in Acquire for key or in the fair
// queue, and for a new key past MaxKeys. n = 0 is granted (see Acquire).
func (kp *Keyed) TryAcquire(key string, n int) (*Permit, bool) {
	ks, err := kp.prepare(key, n)
	if ks == nil {
		return noJobs, err == nil
	}
	if kp.queued.Load() != 0 || ks.waiting.Load() != 0 {
		return nil, false
	}
	return kp.takeNow(ks, n)
}

// prepare checks n and finds key's state. It returns a nil state and a
// nil error for n = 0.
func (kp *Keyed) prepare(key string, n int) (*keyState, error) {
	if kp.global.isClosed() {
		return nil, ErrClosed
	}
	if n < 0 || n > math.MaxInt32 {
		return nil, invalid("n", n, "an integer in [0, 2³¹-1]")
	}
	if n == 0 {
		return nil, nil
	}
	ks, err := kp.state(key)
	if err == nil && ks.gone.Load() { // forgotten as we found it
		ks, err = kp.state(key)
	}
	if err != nil {
		return nil, err
	}
	if f := float64(n); f > kp.global.cfg.Load().capacity || f > ks.burst() {
		return nil, invalid("n", n, fmt.Sprintf("≤ the worker's burst (%g) and key %q's burst (%g)", kp.global.cfg.Load().capacity, key, ks.burst()))
	}
	return ks, nil
}

// takeNow takes n jobs of ks's pace and of the ceiling now, or nothing.
func (kp *Keyed) takeNow(ks *keyState, n int) (*Permit, bool) {
	now := kp.global.now()
	if !ks.take(now, n) {
		return nil, false
	}
	at, ok := kp.global.take(now, float64(n))
	if !ok {
		ks.refund(now, n)
		return nil, false
	}
	return kp.grant(ks, n, at), true
}

// grant counts n jobs of ks dispatched at now and returns their permit.
func (kp *Keyed) grant(ks *keyState, n int, now int64) *Permit {
	ks.dispatched.Add(uint64(n))
	if ks.used.Load() < now {
		ks.used.Store(now)
	}
	if now >= ks.nextEval.Load() {
		ks.probe(now)
	}
	pm := nextPermit(&kp.slab)
	pm.k, pm.n = ks, int32(n)
	pm.at.Store(now)
	return pm
}

// state returns key's state, adding it if it is new.
func (kp *Keyed) state(key string) (*keyState, error) {
	sh := &kp.shards[maphash.String(kp.seed, key)&(keyShards-1)]
	sh.mu.RLock()
	ks := sh.m[key]
	sh.mu.RUnlock()
	if ks != nil {
		return ks, nil
	}
	return kp.add(sh, key)
}

// add adds key's state to sh, forgetting idle keys first if MaxKeys are
// held.
func (kp *Keyed) add(sh *keyShard, key string) (*keyState, error) {
	now := kp.global.now()
	if kp.live.Load() >= int64(kp.cfg.MaxKeys) {
		kp.sweepIfDue(now)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ks := sh.m[key]; ks != nil {
		return ks, nil
	}
	if kp.live.Add(1) > int64(kp.cfg.MaxKeys) {
		kp.live.Add(-1)
		kp.refused.Add(1)
		kp.logRefused(now, key)
		return nil, fmt.Errorf("%w: key %q refused: %d keys held (max_keys), none idle for %v (idle_after)",
			ErrTooManyKeys, key, kp.cfg.MaxKeys, kp.cfg.IdleAfter)
	}
	key = strings.Clone(key) // a key cut from a payload must not hold the payload
	ks := &keyState{kp: kp, name: key}
	kp.lim.RLock()
	l, over := kp.cfg.Keys[key]
	l = l.or(kp.cfg.Key)
	kp.lim.RUnlock()
	ks.init(now, l, over)
	sh.m[key] = ks
	return ks, nil
}

// Close makes every waiting and future Acquire return ErrClosed. Permits
// already given stay valid.
func (kp *Keyed) Close() {
	kp.global.close()
	kp.fq.mu.Lock()
	kp.fq.wake()
	kp.fq.mu.Unlock()
}

// SetRate changes the worker's ceiling.
func (kp *Keyed) SetRate(rate float64) error {
	if err := checkRate("rate", rate); err != nil {
		return err
	}
	kp.global.mu.Lock()
	kp.global.reconfigure(kp.global.now(), rate, kp.global.cfg.Load().capacity)
	kp.global.mu.Unlock()
	kp.lim.Lock()
	kp.cfg.Rate = rate
	kp.lim.Unlock()
	kp.fq.mu.Lock()
	kp.fq.wake()
	kp.fq.mu.Unlock()
	return nil
}

// SetKey sets the limits of the named key, live: a zero field takes the
// default's (KeyedConfig.Key). The key keeps what it learned.
func (kp *Keyed) SetKey(key string, l KeyLimits) error {
	kp.lim.Lock()
	if err := l.check(fmt.Sprintf("keys.%q", key), kp.cfg.Key); err != nil {
		kp.lim.Unlock()
		return err
	}
	if kp.cfg.Keys == nil {
		kp.cfg.Keys = make(map[string]KeyLimits)
	}
	kp.cfg.Keys[key] = l
	full := l.or(kp.cfg.Key)
	kp.lim.Unlock()
	if ks := kp.held(key); ks != nil {
		ks.setLimits(full, true)
	}
	return nil
}

// DeleteKey removes the limits set for key by KeyedConfig.Keys or SetKey:
// it takes the default's again.
func (kp *Keyed) DeleteKey(key string) {
	kp.lim.Lock()
	delete(kp.cfg.Keys, key)
	def := kp.cfg.Key
	kp.lim.Unlock()
	if ks := kp.held(key); ks != nil {
		ks.setLimits(def, false)
	}
}

// SetKeyDefault sets the limits of every key without limits of its own,
// live; a zero field takes its default (the worker's ceiling, a burst of
// 1, DefaultWeight).
func (kp *Keyed) SetKeyDefault(l KeyLimits) error {
	kp.lim.RLock()
	def := KeyLimits{Rate: kp.cfg.Rate, Burst: 1, Weight: DefaultWeight}
	kp.lim.RUnlock()
	if err := l.check("key", def); err != nil {
		return err
	}
	l = l.or(def)
	kp.lim.Lock()
	kp.cfg.Key = l
	kp.lim.Unlock()
	kp.each(func(ks *keyState) {
		kp.lim.RLock()
		o, over := kp.cfg.Keys[ks.name]
		kp.lim.RUnlock()
		ks.setLimits(o.or(l), over)
	})
	return nil
}

// held returns key's state if it is held, without adding it.
func (kp *Keyed) held(key string) *keyState {
	sh := &kp.shards[maphash.String(kp.seed, key)&(keyShards-1)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[key]
}

// each calls f on every key held, one shard at a time under its lock.
func (kp *Keyed) each(f func(*keyState)) {
	for i := range kp.shards {
		sh := &kp.shards[i]
		sh.mu.RLock()
		for _, ks := range sh.m {
			f(ks)
		}
		sh.mu.RUnlock()
	}
}
