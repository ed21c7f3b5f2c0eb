package pacer

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"time"
)

// Run forgets the keys idle for IdleAfter, every IdleAfter ÷ 4, until ctx
// ends, then returns nil. Without Run, idle keys are forgotten only when
// MaxKeys is reached.
func (kp *Keyed) Run(ctx context.Context) error {
	every := kp.cfg.IdleAfter / 4
	for {
		t := kp.global.clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		kp.Sweep()
	}
}

// Sweep forgets now the keys idle for IdleAfter: no caller waits for
// them and none has asked for a job since. It returns how many it forgot.
// Permits of a forgotten key stay valid; its next job starts it afresh.
func (kp *Keyed) Sweep() int {
	now := kp.global.now()
	kp.sweptAt.Store(now)
	idle := now - int64(kp.cfg.IdleAfter)<<tickShift
	gone := 0
	for i := range kp.shards {
		sh := &kp.shards[i]
		sh.mu.Lock()
		for name, ks := range sh.m {
			if ks.used.Load() > idle || ks.waiting.Load() != 0 {
				continue
			}
			ks.gone.Store(true)
			delete(sh.m, name)
			gone++
		}
		sh.mu.Unlock()
	}
	kp.live.Add(int64(-gone))
	kp.evicted.Add(uint64(gone))
	return gone
}

// sweepIfDue sweeps if the last sweep was more than a second ago: at
// MaxKeys, a new key looks for idle ones to forget, at most once a second.
func (kp *Keyed) sweepIfDue(now int64) {
	last := kp.sweptAt.Load()
	if now-last < int64(time.Second)<<tickShift || !kp.sweptAt.CompareAndSwap(last, now) {
		return
	}
	kp.Sweep()
}

// logRefused logs a key refused at MaxKeys, at most once a minute.
func (kp *Keyed) logRefused(now int64, key string) {
	last := kp.refuseAt.Load()
	if now-last < int64(time.Minute)<<tickShift || !kp.refuseAt.CompareAndSwap(last, now) {
		return
	}
	kp.log(kp.record(now, slog.LevelError, "pacer: too many keys: new keys are refused",
		slog.String("key", key), slog.Int("max_keys", kp.cfg.MaxKeys),
		slog.Duration("idle_after", kp.cfg.IdleAfter), slog.Uint64("refused", kp.refused.Load())))
}

// KeyedStats is a snapshot of a Keyed pacer.
type KeyedStats struct {
	Ceiling      float64 // the worker's ceiling, jobs per second
	Keys         int     // keys held now
	Evicted      uint64  // keys forgotten after IdleAfter
	Refused      uint64  // jobs of new keys refused at MaxKeys
	Waiting      int     // callers waiting in the fair queue
	PermitMisuse uint64  // calls on a Permit that did nothing (see Stats.PermitMisuse)
}

// Stats returns a snapshot of kp.
func (kp *Keyed) Stats() KeyedStats {
	return KeyedStats{
		Ceiling:      kp.global.cfg.Load().rate,
		Keys:         int(kp.live.Load()),
		Evicted:      kp.evicted.Load(),
		Refused:      kp.refused.Load(),
		Waiting:      int(kp.queued.Load()),
		PermitMisuse: kp.misuse.Load(),
	}
}

// KeyStats is a snapshot of one key of a Keyed pacer. Counts run from
// the time the key was last started (it starts afresh after IdleAfter).
type KeyStats struct {
	Key        string
	Dispatched uint64 // jobs admitted, less those given back
	Succeeded  uint64
	Failed     uint64
	Throttled  uint64
	// Pace is the key's own pace now, jobs per second: its ceiling, or
	// less while it holds a limit learned from pushback (Limited).
	Pace    float64
	Ceiling float64 // KeyLimits.Rate in force
	Weight  float64 // KeyLimits.Weight in force
	Limited bool    // a limit learned from pushback holds the key
	// Capacity is the key's downstream's capacity as last measured at a
	// cut, jobs per second; 0 before any.
	Capacity float64
	Cuts     uint64
	// PausedUntil is the end of the key's pause; zero if not paused.
	PausedUntil time.Time
	Waiting     int           // callers of the key waiting now
	Waited      uint64        // callers who waited in the fair queue
	MeanWait    time.Duration // their mean wait
	MaxWait     time.Duration // the longest
}

// Key returns a snapshot of key, and false if it is not held.
func (kp *Keyed) Key(key string) (KeyStats, bool) {
	ks := kp.held(key)
	if ks == nil {
		return KeyStats{}, false
	}
	return ks.stats(), true
}

func (ks *keyState) stats() KeyStats {
	s := KeyStats{
		Key: ks.name, Dispatched: ks.dispatched.Load(), Succeeded: ks.succeeded.Load(),
		Failed: ks.failed.Load(), Throttled: ks.throttled.Load(),
		Waiting: int(ks.waiting.Load()), Waited: ks.waited.Load(),
		MaxWait: time.Duration(ks.waitMax.Load() >> tickShift),
	}
	if s.Waited > 0 {
		s.MeanWait = time.Duration(ks.waitSum.Load()/int64(s.Waited)) >> tickShift
	}
	now := ks.kp.global.now()
	ks.mu.Lock()
	s.Pace, s.Ceiling, s.Weight = ks.pace(), ks.lim.Rate, ks.lim.Weight
	s.Limited = !math.IsInf(ks.learn.limit, 1)
	s.Capacity, s.Cuts = ks.learn.wmax, uint64(ks.learn.cuts)
	if ks.learn.pausedUntil > now {
		s.PausedUntil = ks.kp.global.epoch.Add(time.Duration(ks.learn.pausedUntil >> tickShift))
	}
	ks.mu.Unlock()
	return s
}

// TopBy orders keys for Keyed.Top.
type TopBy int

// The orders of Keyed.Top.
const (
	// TopBusiest: most jobs dispatched.
	TopBusiest TopBy = iota
	// TopThrottled: most Throttled outcomes.
	TopThrottled
	// TopDelayed: longest mean wait in the fair queue.
	TopDelayed
)

// Top returns the n keys first by the given order, first first. It reads
// every key held, so it costs about 20ns a key: call it for a status
// page, not per job.
func (kp *Keyed) Top(n int, by TopBy) []KeyStats {
	if n <= 0 {
		return nil
	}
	type entry struct {
		v  float64
		ks *keyState
	}
	top := make([]entry, 0, n+1)
	kp.each(func(ks *keyState) {
		var v float64
		switch by {
		case TopThrottled:
			v = float64(ks.throttled.Load())
		case TopDelayed:
			if w := ks.waited.Load(); w > 0 {
				v = float64(ks.waitSum.Load()) / float64(w)
			}
		default:
			v = float64(ks.dispatched.Load())
		}
		if v == 0 || len(top) == n && v <= top[n-1].v {
			return
		}
		i, _ := slices.BinarySearchFunc(top, v, func(e entry, v float64) int {
			switch {
			case e.v > v:
				return -1
			case e.v < v:
				return 1
			}
			return 0
		})
		top = slices.Insert(top, i, entry{v, ks})
		if len(top) > n {
			top = top[:n]
		}
	})
	out := make([]KeyStats, len(top))
	for i, e := range top {
		out[i] = e.ks.stats()
	}
	return out
}
