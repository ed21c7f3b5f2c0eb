package pacer_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/jobpacer/pacer/pacer"
)

const keyedFast = 1e9 // a ceiling that never binds: the benchmarks measure the cost

func keyNames(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "customer-" + strconv.Itoa(i)
	}
	return keys
}

// newHeld returns a Keyed pacer holding n keys.
func newHeld(b testing.TB, n int) (*pacer.Keyed, []string) {
	kp, err := pacer.NewKeyed(pacer.KeyedConfig{Rate: keyedFast, Burst: keyedFast, MaxKeys: n,
		Key: pacer.KeyLimits{Burst: keyedFast}})
	if err != nil {
		b.Fatal(err)
	}
	keys := keyNames(n)
	for _, k := range keys {
		pm, ok := kp.TryAcquire(k, 1)
		if !ok {
			b.Fatal("refused")
		}
		pm.Done(nil)
	}
	return kp, keys
}

// Acquire and TryAcquire of a key already held, with 10, 10,000 and
// 100,000 keys held, beside the plain Pacer's (BenchmarkPlain*).
func BenchmarkKeyedTryAcquire(b *testing.B) {
	for _, n := range []int{10, 10_000, 100_000} {
		b.Run(strconv.Itoa(n)+"keys", func(b *testing.B) {
			kp, keys := newHeld(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				pm, ok := kp.TryAcquire(keys[i%n], 1)
				if !ok {
					b.Fatal("refused")
				}
				pm.Done(nil)
				i++
			}
		})
	}
}

func BenchmarkKeyedAcquire(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 10_000, 100_000} {
		b.Run(strconv.Itoa(n)+"keys", func(b *testing.B) {
			kp, keys := newHeld(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				pm, err := kp.Acquire(ctx, keys[i%n], 1)
				if err != nil {
					b.Fatal(err)
				}
				pm.Done(nil)
				i++
			}
		})
	}
}

func BenchmarkPlainTryAcquire(b *testing.B) {
	p, err := pacer.New(pacer.Config{Rate: keyedFast, Burst: keyedFast, BaseBurst: keyedFast})
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

func BenchmarkPlainAcquire(b *testing.B) {
	p, err := pacer.New(pacer.Config{Rate: keyedFast, Burst: keyedFast, BaseBurst: keyedFast})
	if err != nil {
		b.Fatal(err)
	}
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

// BenchmarkKeyedParallel is TryAcquire from every core, over 10,000 keys.
func BenchmarkKeyedParallel(b *testing.B) {
	kp, keys := newHeld(b, 10_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			pm, ok := kp.TryAcquire(keys[i%len(keys)], 1)
			if !ok {
				b.Error("refused")
				return
			}
			pm.Done(nil)
			i += 7
		}
	})
}

// heapPerKey returns the bytes of heap a held key costs, measured over n
// keys (their names included).
func heapPerKey(t testing.TB, n int) float64 {
	keys := keyNames(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kp, err := pacer.NewKeyed(pacer.KeyedConfig{Rate: keyedFast, Burst: keyedFast, MaxKeys: n})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		pm, ok := kp.TryAcquire(k, 1)
		if !ok {
			t.Fatal("refused")
		}
		pm.Done(nil)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if kp.Stats().Keys != n {
		t.Fatalf("%d keys held, want %d", kp.Stats().Keys, n)
	}
	runtime.KeepAlive(kp)
	runtime.KeepAlive(keys)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// A held key costs at most 512 bytes of heap, its map entry and its
// name's copy included (names of 14-15 bytes here).
func TestKeyedBytesPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 keys")
	}
	per := heapPerKey(t, 100_000)
	t.Logf("%.0f bytes of heap per held key (100,000 keys)", per)
	if per > 512 {
		t.Errorf("%.0f bytes per held key, want ≤ 512", per)
	}
}
