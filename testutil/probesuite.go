package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// ProbeQueue is one fresh, empty queue of a backend, and the backlog probe
// under test that reads it, for TestProbe. Each subtest of TestProbe makes
// its own, so no two subtests share a queue.
type ProbeQueue interface {
	// Enqueue adds n jobs to the queue and returns once the backend has
	// accepted all of them. It fails t on error.
	Enqueue(t *testing.T, n int)
	// Take consumes the n oldest jobs of the queue as a worker would and
	// settles them (acknowledges or removes them), so that they are
	// neither pending nor coming back. It returns once they are settled,
	// and fails t on error or when fewer than n jobs are there.
	Take(t *testing.T, n int)
	// Probe returns the probe under test, reading this queue.
	Probe() pacer.Probe
}

// ProbeFeatures says what a probe supports, so that TestProbe runs only
// the subtests that apply to it.
type ProbeFeatures struct {
	// OldestAge is true if Backlog reports the age of the oldest pending
	// job on every read: it is above zero while a job is pending and grows
	// while that job waits. A probe that reports an age only sometimes
	// (or never) leaves it false.
	OldestAge bool
}

// probeHangLimit is how long TestProbe lets one Backlog call take before
// it calls it hung. It is a guard against hangs, not a latency assertion.
const probeHangLimit = 10 * time.Second

// TestProbe runs the shared suite that every backlog probe (pacer.Probe)
// passes, as subtests of t. newQueue makes one fresh empty queue and its
// probe; it is called once per subtest with that subtest's t, and should
// register any cleanup with it. f says what the probe supports. The
// subtests run one after another; each reads the probe only after the
// ProbeQueue calls before it have returned.
//
// It checks that an empty queue reads zero pending (and zero age), that n
// enqueued jobs read n pending, that taken jobs are no longer pending,
// that the oldest age grows while a job waits (when f.OldestAge), and that
// Backlog with a cancelled context returns (an error, or a correct value)
// instead of hanging.
func TestProbe(t *testing.T, newQueue func(t *testing.T) ProbeQueue, f ProbeFeatures) {
	t.Helper()

	t.Run("an empty queue reads zero pending", func(t *testing.T) {
		q := newQueue(t)
		b := readBacklog(t, q.Probe(), "on an empty queue")
		if b != (pacer.Backlog{}) {
			t.Errorf("Backlog() on an empty queue = %+v, want zero Pending and zero OldestAge", b)
		}
	})

	t.Run("n enqueued jobs read n pending", func(t *testing.T) {
		q := newQueue(t)
		q.Enqueue(t, 3)
		if got, want := readBacklog(t, q.Probe(), "after enqueuing 3").Pending, int64(3); got != want {
			t.Errorf("Backlog().Pending after enqueuing 3 = %d, want %d", got, want)
		}
		q.Enqueue(t, 4)
		if got, want := readBacklog(t, q.Probe(), "after enqueuing 3 then 4").Pending, int64(7); got != want {
			t.Errorf("Backlog().Pending after enqueuing 3 then 4 = %d, want %d", got, want)
		}
	})

	t.Run("taken jobs are no longer pending", func(t *testing.T) {
		q := newQueue(t)
		q.Enqueue(t, 5)
		q.Take(t, 2)
		if got, want := readBacklog(t, q.Probe(), "after enqueuing 5, taking 2").Pending, int64(3); got != want {
			t.Errorf("Backlog().Pending after enqueuing 5, taking 2 = %d, want %d", got, want)
		}
		q.Take(t, 3)
		b := readBacklog(t, q.Probe(), "after taking all 5")
		if b != (pacer.Backlog{}) {
			t.Errorf("Backlog() after enqueuing 5 and taking all 5 = %+v, want zero Pending and zero OldestAge", b)
		}
	})

	if f.OldestAge {
		t.Run("the oldest age grows while a job waits", func(t *testing.T) {
			q := newQueue(t)
			q.Enqueue(t, 2)
			// The jobs wait in real time on the backend's clock: read
			// until the age is above zero, then until it has grown, and
			// check every read on the way (no fixed sleep).
			first := readUntil(t, q.Probe(), "while 2 jobs wait", pacer.Backlog{Pending: 2}, func(b pacer.Backlog) bool { return b.OldestAge > 0 })
			readUntil(t, q.Probe(), "while 2 jobs wait", first, func(b pacer.Backlog) bool { return b.OldestAge > first.OldestAge })
		})
	}

	t.Run("a cancelled context returns an error or a value, never hangs", func(t *testing.T) {
		q := newQueue(t)
		q.Enqueue(t, 2)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b, err := backlogWithin(t, q.Probe(), ctx)
		if err == nil && b.Pending != 2 {
			t.Errorf("Backlog(cancelled ctx) = %+v, nil; want an error, or Pending 2 (the queue's true backlog)", b)
		}
		// The probe still works with a live context afterwards.
		if got, want := readBacklog(t, q.Probe(), "after a cancelled read").Pending, int64(2); got != want {
			t.Errorf("Backlog().Pending after a read with a cancelled context = %d, want %d", got, want)
		}
	})
}

// readUntil reads p every pollEvery until done holds, and fails t if a read
// shows a Pending other than floor's or an OldestAge below the read before
// it (starting at floor's), or if done does not hold within probeHangLimit.
// It returns the read for which done held.
func readUntil(t *testing.T, p pacer.Probe, when string, floor pacer.Backlog, done func(pacer.Backlog) bool) pacer.Backlog {
	t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	deadline := time.After(probeHangLimit)
	prev := floor.OldestAge
	for {
		b := readBacklog(t, p, when)
		if b.Pending != floor.Pending || b.OldestAge < prev {
			t.Fatalf("Backlog() %s = %+v, want Pending %d and OldestAge ≥ %v (the read before)", when, b, floor.Pending, prev)
		}
		if done(b) {
			return b
		}
		prev = b.OldestAge
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("Backlog() %s = %+v after %v of reads: the oldest age never grew", when, b, probeHangLimit)
		}
	}
}

// pollEvery is how often readUntil reads the probe.
const pollEvery = 10 * time.Millisecond

// readBacklog reads p with a live context and fails t on error or hang.
func readBacklog(t *testing.T, p pacer.Probe, when string) pacer.Backlog {
	t.Helper()
	b, err := backlogWithin(t, p, t.Context())
	if err != nil {
		t.Fatalf("Backlog() %s: %v", when, err)
	}
	return b
}

// backlogWithin calls p.Backlog(ctx) and fails t if it has not returned
// within probeHangLimit.
func backlogWithin(t *testing.T, p pacer.Probe, ctx context.Context) (pacer.Backlog, error) {
	t.Helper()
	type result struct {
		b   pacer.Backlog
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := p.Backlog(ctx)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(probeHangLimit):
		t.Fatalf("Backlog() has not returned after %v: hung", probeHangLimit)
		return pacer.Backlog{}, nil
	}
}
