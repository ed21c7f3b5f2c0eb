package pacer_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// op is one fuzzed call: after dt, take (or acquire) n, or change a setting.
type op struct {
	dt   time.Duration
	kind byte
	v    float64 // a setting: rate ÷ 100, capacity or factor
	n    int     // tokens to take
}

// decode turns fuzz bytes into ops: 4 bytes each.
func decode(data []byte) []op {
	var ops []op
	for len(data) >= 4 {
		dt := time.Duration(int(data[0])<<8|int(data[1])) * 10 * time.Microsecond // up to ~655ms
		ops = append(ops, op{dt: dt, kind: data[2] % 8, v: float64(data[3]%64)/8 + 0.125, n: int(data[3]%8) + 1})
		data = data[4:]
	}
	return ops
}

type release struct {
	at time.Duration
	n  float64
}

// checkWindows checks that no window [a, b] released more than
// capacity + rate × (b − a), beyond the rounding of the schedule: at most
// one tick (1/16 ns) per take and once for the capacity.
func checkWindows(t *testing.T, rel []release, capacity, rate float64) {
	t.Helper()
	cost := 16e9 / rate // ticks per token
	for i := range rel {
		sum, k := 0.0, 0
		for j := i; j < len(rel); j++ {
			sum += rel[j].n
			k++
			w := (rel[j].at - rel[i].at).Seconds()
			if bound := capacity + rate*w + float64(k+1)/cost; sum > bound+1e-9 {
				t.Fatalf("released %v in [%v, %v] (%v long): more than capacity %v + rate %v × window = %v",
					sum, rel[i].at, rel[j].at, rel[j].at-rel[i].at, capacity, rate, bound)
			}
		}
	}
}

func FuzzTokenBucket(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 0, 1, 0, 8, 0, 100, 0, 63, 1, 0, 5, 20, 0, 0, 6, 7, 0, 50, 0, 8})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{255, 255, 0, 63, 0, 1, 5, 1, 0, 1, 0, 1, 0, 1, 6, 63, 0, 2, 0, 63})
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := decode(data)
		if len(ops) > 300 {
			ops = ops[:300]
		}
		rate, capacity := 100.0, 4.0
		maxRate, maxCap := rate, capacity
		b, err := pacer.NewTokenBucket(rate, capacity, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The bucket reads its epoch from the system clock; work in
		// explicit times after it. Kind 7 steps the caller's clock back
		// by dt instead: the bucket takes a time before the latest one a
		// take or a setter has seen as that one, so releases are timed at
		// seen.
		now := time.Now()
		start := now
		var seen time.Time
		see := func() {
			if seen.IsZero() || now.After(seen) {
				seen = now
			}
		}
		var rel []release
		for _, o := range ops {
			if o.kind == 7 {
				now = now.Add(-o.dt)
			} else {
				now = now.Add(o.dt)
			}
			switch o.kind {
			case 5:
				rate = o.v * 100
				if err := b.SetRateAt(now, rate); err != nil {
					t.Fatal(err)
				}
				maxRate = max(maxRate, rate)
				see()
			case 6:
				err := b.SetCapacityAt(now, o.v)
				if o.v < pacer.MinCapacity {
					// Under a whole token: refused, and the bucket unchanged.
					if !errors.Is(err, pacer.ErrInvalid) {
						t.Fatalf("SetCapacityAt(%v) = %v, want ErrInvalid (MinCapacity %v)", o.v, err, pacer.MinCapacity)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				capacity = o.v
				maxCap = max(maxCap, capacity)
				see()
			default:
				before := b.TokensAt(now)
				ok := b.TryAcquireAt(now, o.n)
				n := float64(o.n)
				tick := rate / 16e9 // one tick's worth of tokens: the rounding
				if ok && before < n-tick || !ok && before >= n+tick && n <= capacity {
					t.Fatalf("TryAcquireAt(%v) = %v with %v tokens", o.n, ok, before)
				}
				if n <= capacity { // a take above it is refused unseen
					see()
				}
				if ok {
					rel = append(rel, release{seen.Sub(start), n})
				}
			}
			tok := b.TokensAt(now)
			if tok < 0 || tok > capacity+1e-9 || math.IsNaN(tok) {
				t.Fatalf("TokensAt = %v, want within [0, %v]", tok, capacity)
			}
		}
		checkWindows(t, rel, maxCap, maxRate)
	})
}

func FuzzLeakyBucket(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 0, 1, 0, 8, 0, 100, 0, 63, 1, 0, 7, 20, 0, 0, 7, 7, 0, 50, 0, 8})
	f.Add([]byte{0, 10, 1, 1, 0, 10, 1, 1, 0, 10, 1, 1, 0, 10, 1, 1, 0, 10, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := decode(data)
		if len(ops) > 300 {
			ops = ops[:300]
		}
		const capacity, leak = 5.0, 50.0
		b, err := pacer.NewLeakyBucket(pacer.LeakyConfig{Capacity: capacity, Leak: leak})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		start := now
		var rel []release
		for _, o := range ops {
			now = now.Add(o.dt)
			switch o.kind {
			case 7:
				if err := b.SetFactorAt(now, o.v); err != nil {
					t.Fatal(err)
				}
			default:
				if b.TryAcquireAt(now, o.n) {
					rel = append(rel, release{now.Sub(start), float64(o.n)})
				}
			}
			lvl := b.LevelAt(now)
			if lvl < 0 || lvl > capacity+1e-9 || math.IsNaN(lvl) {
				t.Fatalf("LevelAt = %v, want within [0, %v]", lvl, capacity)
			}
			if f := b.FactorAt(now); f < pacer.DefaultMinFactor || f > pacer.DefaultMaxFactor {
				t.Fatalf("factor %v outside [%v, %v]", f, pacer.DefaultMinFactor, pacer.DefaultMaxFactor)
			}
		}
		checkWindows(t, rel, capacity, leak*pacer.DefaultMaxFactor)
	})
}
