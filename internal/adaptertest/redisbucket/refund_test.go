package redisbucket_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// An adapter acquires permits before it knows there is work (a long poll)
// and cancels those it does not use: the bucket takes the slots back, so
// a worker polling an empty queue does not use up the fleet's rate.
func TestRefund(t *testing.T) {
	addr := testenv.Redis(t)
	t.Run("a worker that acquires and cancels leaves the rate to the others", func(t *testing.T) {
		const rate, dur, pollers = 400.0, 2 * time.Second, 2
		key := testenv.UniqueName(t)
		idle := newBucket(t, client(t, addr), redisbucket.Config{Key: key, Rate: rate})
		busy := newBucket(t, client(t, addr), redisbucket.Config{Key: key, Rate: rate})
		p, err := pacer.New(pacer.Config{Rate: rate, Limiter: idle})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), dur)
		defer cancel()
		var polls atomic.Int64
		var wg sync.WaitGroup
		for range pollers { // each poller: each: a permit, a 5 ms poll that finds nothing, Cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					pm, err := p.Acquire(ctx, 1)
					if err != nil {
						return
					}
					time.Sleep(5 * time.Millisecond)
					pm.Cancel()
					polls.Add(1)
				}
			}()
		}
		got := drain(ctx, busy, 2)
		wg.Wait()
		si := idle.Stats()
		want := rate * dur.Seconds()
		t.Logf("busy worker: %d of %.0f; idle worker: %d polls, %+v", got, want, polls.Load(), si)
		if float64(got) < 0.9*want {
			t.Errorf("the busy worker got %d in %v at %g/s while the other only polled and cancelled, want ≥ 90%% of %.0f", got, dur, rate, want)
		}
		// A slot given back may be used again until LeaseTime after its
		// due time: each poller costs about a slot per LeaseTime (40 here).
		// The bound allows twice that, for pollers the scheduler holds
		// up; without refunds every poll would keep a slot (≥ 100 polls).
		if limit := uint64(pollers*dur/redisbucket.DefaultLeaseTime*2 + 8); si.Granted-si.Returned > limit {
			t.Errorf("the polling worker kept %d slots in %v, want ≤ %d (about one per poller per LeaseTime)", si.Granted-si.Returned, dur, limit)
		}
		if polls.Load() < 100 {
			t.Errorf("the polling worker polled %d times in %v, want ≥ 100: cancelled permits should come back at once", polls.Load(), dur)
		}
		if si.Dispatched != 0 || p.Stats().Dispatched != 0 {
			t.Errorf("Dispatched = %d (bucket), %d (pacer) after cancelling every permit, want 0", si.Dispatched, p.Stats().Dispatched)
		}
	})
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, b *redisbucket.Bucket)
	}{
		{"a refunded slot goes back to Redis when the worker goes idle", func(t *testing.T, b *redisbucket.Bucket) {
			testenv.Eventually(3*time.Second, func() bool { return b.Stats().Returned > 0 })
		}},
		{"a refunded slot goes back to Redis on Close", func(t *testing.T, b *redisbucket.Bucket) { b.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One slot every 2 s; a 1 s lease leaves time to go idle
			// before the slot would expire.
			c := redisbucket.Config{Key: testenv.UniqueName(t), Rate: 0.5, LeaseTime: time.Second}
			a := newBucket(t, client(t, addr), c)
			p, err := pacer.New(pacer.Config{Rate: 1e9, Limiter: a})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			for range 5 { // the same slot each time
				pm, err := p.Acquire(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				pm.Cancel()
			}
			tc.stop(t, a)
			if s := a.Stats(); s.Granted != 1 || s.Returned != 1 || s.Dispatched != 0 {
				t.Errorf("Stats() = %+v, want the one slot granted, 5 times refunded, returned", s)
			}
			// Another worker gets it now, not 2 s from now.
			b := newBucket(t, client(t, addr), c)
			wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if err := b.Wait(wctx, 1); err != nil {
				t.Errorf("another worker's Wait = %v, want the slot the first gave back", err)
			}
		})
	}
}
