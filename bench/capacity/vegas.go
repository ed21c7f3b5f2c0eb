package main

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// vegas is a concurrency limiter after Netflix concurrency-limits'
// VegasLimit.java with its defaults (initial limit 20, alpha 3·log10,
// beta 6·log10, threshold log10, increase and decrease by log10,
// smoothing 1, probe for a new no-load RTT every 30 × limit samples,
// with jitter), behind a blocking semaphore: a worker waits for a slot
// rather than being refused, as a job queue's worker would.
type vegas struct {
	mu       sync.Mutex
	cond     *sync.Cond
	limit    float64
	inflight int
	noLoad   time.Duration
	probes   int
	jitter   float64
}

func newVegas() *vegas {
	v := &vegas{limit: 20, jitter: 0.5 + rand.Float64()/2}
	v.cond = sync.NewCond(&v.mu)
	return v
}

// log10 is concurrency-limits' Log10RootFunction with baseline 0: the
// integer log10 of the limit, at least 1.
func log10(limit int) float64 { return max(1, math.Floor(math.Log10(float64(limit)))) }

func (v *vegas) acquire(ctx context.Context) (func(error), error) {
	v.mu.Lock()
	for v.inflight >= int(v.limit) {
		if ctx.Err() != nil {
			v.mu.Unlock()
			return nil, ctx.Err()
		}
		v.cond.Wait()
	}
	v.inflight++
	inflight := v.inflight
	v.mu.Unlock()
	start := time.Now()
	return func(err error) {
		rtt := time.Since(start)
		v.mu.Lock()
		v.inflight--
		v.update(rtt, inflight, err != nil)
		v.mu.Unlock()
		v.cond.Broadcast()
	}, nil
}

// update is VegasLimit._update. It requires mu held.
func (v *vegas) update(rtt time.Duration, inflight int, drop bool) {
	v.probes++
	if v.jitter*30*v.limit <= float64(v.probes) {
		v.jitter = 0.5 + rand.Float64()/2
		v.probes = 0
		v.noLoad = rtt
		return
	}
	if v.noLoad == 0 || rtt < v.noLoad {
		v.noLoad = rtt
		return
	}
	queue := math.Ceil(v.limit * (1 - float64(v.noLoad)/float64(rtt)))
	l := int(v.limit)
	var next float64
	switch {
	case drop:
		next = v.limit - log10(l)
	case float64(inflight)*2 < v.limit:
		return
	case queue <= log10(l):
		next = v.limit + 6*log10(l)
	case queue < 3*log10(l):
		next = v.limit + log10(l)
	case queue > 6*log10(l):
		next = v.limit - log10(l)
	default:
		return
	}
	v.limit = max(1, min(1000, next))
}

// stop wakes every waiter, so that they see their context ended.
func (v *vegas) stop() { v.cond.Broadcast() }
