package bench

import (
	"context"
	"testing"

	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/jobpacer/pacer/pacer"
)

// The fast path of each limiter, at a rate high enough that every call is
// admitted: what it costs a caller that is not being held back.
const fast = 1e9

func BenchmarkTryAcquire(b *testing.B) {
	tb, err := pacer.NewTokenBucket(fast, fast, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !tb.TryAcquire(1) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkTryAcquireParallel(b *testing.B) {
	tb, _ := pacer.NewTokenBucket(fast, fast, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tb.TryAcquire(1)
		}
	})
}

func BenchmarkRateAllow(b *testing.B) {
	l := rate.NewLimiter(fast, fast)
	b.ReportAllocs()
	for b.Loop() {
		if !l.Allow() {
			b.Fatal("refused")
		}
	}
}

func BenchmarkRateAllowParallel(b *testing.B) {
	l := rate.NewLimiter(fast, fast)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}

func BenchmarkUberTake(b *testing.B) {
	l := ratelimit.New(fast)
	b.ReportAllocs()
	for b.Loop() {
		l.Take()
	}
}

func BenchmarkUberTakeParallel(b *testing.B) {
	l := ratelimit.New(fast)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Take()
		}
	})
}

// The whole Pacer's admission fast path: base pace, ceiling, counters.
func BenchmarkPacerTryAcquire(b *testing.B) {
	p, err := pacer.New(pacer.Config{Rate: fast, Burst: fast, BaseBurst: fast})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		pm, ok := p.TryAcquire(1)
		if !ok {
			b.Fatal("refused")
		}
		pm.Done(nil)
	}
}

func BenchmarkPacerAcquire(b *testing.B) {
	p, _ := pacer.New(pacer.Config{Rate: fast, Burst: fast, BaseBurst: fast})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		pm, err := p.Acquire(ctx, 1)
		if err != nil {
			b.Fatal(err)
		}
		pm.Done(nil)
	}
}
