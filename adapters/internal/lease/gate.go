package lease

import "math"

// gate is a local token bucket kept as a schedule, in local µs. It is the
// fallback at the worker's share. Guarded by Bucket.mu.
type gate struct{ zero, cost, full float64 }

// reset starts the gate full at rate and burst.
func (g *gate) reset(now, rate, burst float64) {
	g.cost = 1e6 / rate
	g.full = burst * g.cost
	g.zero = now - g.full
}

// setRate changes the rate, keeping the balance.
func (g *gate) setRate(now, rate, burst float64) {
	if g.cost == 0 {
		g.reset(now, rate, burst)
		return
	}
	bal := min((now-max(g.zero, now-g.full))/g.cost, burst)
	g.cost = 1e6 / rate
	g.full = burst * g.cost
	g.zero = now - bal*g.cost
}

// take takes up to want tokens that are there at now and returns how many.
func (g *gate) take(now float64, want int) int { return g.takeFrom(now, want, math.Inf(-1)) }

// takeFrom is take for a waiter that slept until the token after from fell
// due: the tokens that fell due while its timer was late are still there,
// even beyond the capacity (as the core's buckets do).
func (g *gate) takeFrom(now float64, want int, from float64) int {
	base := max(g.zero, min(now-g.full, from))
	k := min(want, int((now-base)/g.cost+1e-9))
	if k <= 0 {
		return 0
	}
	g.zero = base + float64(k)*g.cost
	return k
}

// next is when the next token falls due.
func (g *gate) next(now float64) float64 { return max(g.zero, now-g.full) + g.cost }

// refund gives back k tokens, without overfilling.
func (g *gate) refund(now float64, k int) {
	g.zero = max(g.zero-float64(k)*g.cost, now-g.full)
}

// offsetFilter estimates the store's time minus local time from the last few
// calls, trusting the one with the shortest round trip (as NTP does).
type offsetFilter struct {
	off, rtt [8]float64
	n, i     int
}

func (f *offsetFilter) add(off, rtt float64) {
	f.off[f.i], f.rtt[f.i] = off, rtt
	f.i = (f.i + 1) % len(f.off)
	f.n = min(f.n+1, len(f.off))
}

func (f *offsetFilter) best() float64 {
	j := 0
	for i := 1; i < f.n; i++ {
		if f.rtt[i] < f.rtt[j] {
			j = i
		}
	}
	return f.off[j]
}
