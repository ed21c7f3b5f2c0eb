package pacer_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/jobpacer/pacer/pacer"
)

// Each misuse of a Permit is a no-op counted in Stats.PermitMisuse: the
// in-flight cap and the counts stay right.

func TestPermitDoneTwiceNeverAdmitsTwo(t *testing.T) {
	t.Parallel()
	p, _ := newPacer(t, pacer.Config{Rate: 100, Burst: 10, MaxInFlight: 1})
	pm, ok := p.TryAcquire(1)
	if !ok {
		t.Fatal("TryAcquire(1) on a fresh pacer failed")
	}
	pm.Done(nil)
	pm.Done(nil) // misuse: must not free a second slot
	a, ok := p.TryAcquire(1)
	if !ok {
		t.Fatal("TryAcquire(1) after Done failed")
	}
	if b, ok := p.TryAcquire(1); ok {
		b.Done(nil)
		t.Fatal("MaxInFlight 1 admitted two permits after a double Done")
	}
	a.Done(nil)
	st := p.Stats()
	if got, want := st.PermitMisuse, uint64(1); got != want {
		t.Errorf("Stats().PermitMisuse = %d, want %d", got, want)
	}
	if st.InFlight != 0 || st.Succeeded != 2 || st.Dispatched != 2 {
		t.Errorf("Stats() = %+v; want InFlight 0, Succeeded 2, Dispatched 2", st)
	}
}

func TestPermitCancelThenDone(t *testing.T) {
	t.Parallel()
	p, _ := newPacer(t, pacer.Config{Rate: 100, Burst: 10})
	pm, ok := p.TryAcquire(2)
	if !ok {
		t.Fatal("TryAcquire(2) on a fresh pacer failed")
	}
	pm.Cancel()
	pm.Done(errors.New("late outcome")) // misuse
	pm.Cancel()                         // misuse
	st := p.Stats()
	if st.InFlight != 0 || st.Dispatched != 0 || st.Failed != 0 {
		t.Errorf("Stats() = %+v; want InFlight 0, Dispatched 0, Failed 0", st)
	}
	if got, want := st.PermitMisuse, uint64(2); got != want {
		t.Errorf("Stats().PermitMisuse = %d, want %d", got, want)
	}
	if got := pm.N(); got != 0 {
		t.Errorf("N() after Cancel = %d, want 0", got)
	}
}

func TestPermitCancelNThenDone(t *testing.T) {
	t.Parallel()
	p, _ := newPacer(t, pacer.Config{Rate: 100, Burst: 10, MaxInFlight: 5})
	pm, ok := p.TryAcquire(5)
	if !ok {
		t.Fatal("TryAcquire(5) on a fresh pacer failed")
	}
	pm.CancelN(3)
	if got, want := pm.N(), 2; got != want {
		t.Fatalf("N() after CancelN(3) of 5 = %d, want %d", got, want)
	}
	pm.CancelN(3) // misuse: only 2 left
	if got, want := pm.N(), 2; got != want {
		t.Fatalf("N() after CancelN(3) of 2 = %d, want %d (nothing given back)", got, want)
	}
	pm.Done(nil)
	st := p.Stats()
	if st.InFlight != 0 || st.Dispatched != 2 || st.Succeeded != 2 {
		t.Errorf("Stats() = %+v; want InFlight 0, Dispatched 2, Succeeded 2", st)
	}
	if got, want := st.PermitMisuse, uint64(1); got != want {
		t.Errorf("Stats().PermitMisuse = %d, want %d", got, want)
	}
	// The cap is whole again: 5 slots, not 5 + something freed twice.
	big, ok := p.TryAcquire(5)
	if !ok {
		t.Fatal("TryAcquire(5) after everything was given back failed")
	}
	if extra, ok := p.TryAcquire(1); ok {
		extra.Done(nil)
		t.Fatal("MaxInFlight 5 admitted a sixth job")
	}
	big.Done(nil)
}

func TestPermitConcurrentDone(t *testing.T) {
	t.Parallel()
	const goroutines = 32
	p, _ := newPacer(t, pacer.Config{Rate: 100, Burst: 10, MaxInFlight: 3})
	pm, ok := p.TryAcquire(3)
	if !ok {
		t.Fatal("TryAcquire(3) on a fresh pacer failed")
	}
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range goroutines {
		wg.Go(func() {
			start.Wait()
			switch i % 3 {
			case 0:
				pm.Done(nil)
			case 1:
				pm.Cancel()
			default:
				pm.CancelN(1)
			}
		})
	}
	start.Done()
	wg.Wait()
	st := p.Stats()
	if st.InFlight != 0 {
		t.Errorf("Stats().InFlight = %d, want 0", st.InFlight)
	}
	// Every job was either reported once or given back once.
	if got := st.Succeeded + (3 - st.Dispatched); got != 3 {
		t.Errorf("succeeded %d + given back %d = %d, want 3", st.Succeeded, 3-st.Dispatched, got)
	}
	if st.Dispatched != st.Succeeded {
		t.Errorf("Dispatched %d, Succeeded %d; want equal", st.Dispatched, st.Succeeded)
	}
	for range 3 {
		if _, ok := p.TryAcquire(1); !ok {
			t.Fatal("a slot was lost")
		}
	}
	if _, ok := p.TryAcquire(1); ok {
		t.Fatal("MaxInFlight 3 admitted a fourth job")
	}
}

func TestNilPermit(t *testing.T) {
	t.Parallel()
	var pm *pacer.Permit
	pm.Done(nil)
	pm.Cancel()
	pm.CancelN(1)
	if got := pm.N(); got != 0 {
		t.Errorf("(*Permit)(nil).N() = %d, want 0", got)
	}
}

// Stats is one snapshot: its InFlight is its own Dispatched less the jobs
// it counts finished, never negative, while other goroutines acquire,
// finish and give back permits.
func TestStatsInFlightMatchesItsCounters(t *testing.T) {
	t.Parallel()
	p, err := pacer.New(pacer.Config{Rate: pacer.MaxRate, Burst: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				pm, ok := p.TryAcquire(2)
				if !ok {
					continue
				}
				if i == 0 {
					pm.CancelN(1)
				}
				pm.Done(nil)
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	for range 20000 {
		st := p.Stats()
		finished := st.Succeeded + st.Failed + st.Throttled
		if st.InFlight < 0 || st.InFlight != int64(st.Dispatched-finished) {
			t.Fatalf("Stats: InFlight %d, Dispatched %d, finished %d; want InFlight = Dispatched − finished ≥ 0",
				st.InFlight, st.Dispatched, finished)
		}
	}
}

// Stats never shows a negative InFlight or a Dispatched that wrapped below
// zero while permits are acquired and cancelled around it: Dispatched is
// read in an order that holds every give-back's permit (reading it the
// other way showed InFlight −1 within a few thousand snapshots).
func TestStatsWhileCancelling(t *testing.T) {
	t.Parallel()
	p, _ := newPacer(t, pacer.Config{Rate: 1e9, Burst: 1e6, BaseBurst: 1e6})
	const workers, rounds = 2, 20000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if pm, ok := p.TryAcquire(1); ok {
					pm.Cancel()
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	snapshots := 0
	for {
		select {
		case <-done:
			if st := p.Stats(); st.Dispatched != 0 || st.InFlight != 0 {
				t.Errorf("after every permit was cancelled: Dispatched %d, InFlight %d; want 0, 0", st.Dispatched, st.InFlight)
			}
			t.Logf("%d snapshots", snapshots)
			return
		default:
		}
		st := p.Stats()
		snapshots++
		if st.InFlight < 0 || st.Dispatched > 1<<62 {
			t.Fatalf("snapshot %d: InFlight %d, Dispatched %d; want ≥ 0 and no wrap", snapshots, st.InFlight, st.Dispatched)
		}
	}
}
