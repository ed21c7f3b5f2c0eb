package testutil

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// ConsumerQueue is one fresh, empty queue of a backend and the paced
// consumer under test that takes jobs from it, for TestConsumer. Each
// subtest of TestConsumer makes its own, so no two subtests share a queue.
type ConsumerQueue interface {
	// Enqueue adds one job per payload to the queue and returns once the
	// backend has accepted all of them. It fails t on error.
	Enqueue(t *testing.T, payloads ...string)
	// Consume starts the paced consumer over the queue: it takes each job
	// once p admits it (a permit per job), calls h with the job's payload
	// and feeds h's error to the permit as the job's outcome: nil settles
	// the job; a *pacer.Throttled (pacer.Throttle) or another error gives
	// it back to the queue, to be delivered again if the backend
	// redelivers. h may be called from several goroutines at once.
	//
	// The returned stop stops taking jobs, waits for the handlers in
	// flight, gives back to the queue what was taken and not handled, and
	// returns once the consumer has stopped. TestConsumer calls it once;
	// the queue's cleanup must not need it.
	Consume(t *testing.T, p *pacer.Pacer, h func(ctx context.Context, payload string) error) (stop func())
}

// ConsumerFeatures says what a consumer's backend supports, so that
// TestConsumer runs only the subtests that apply to it.
type ConsumerFeatures struct {
	// Redelivers is true if a job given back (an error outcome, a
	// throttle, or taken and not handled when the consumer stopped) is
	// delivered again, to this consumer or the next one over the same
	// queue: Asynq, JetStream, RabbitMQ. Core NATS, which loses what no
	// subscriber holds, leaves it false.
	Redelivers bool
}

// consumerHangLimit is how long TestConsumer waits for jobs to be handled
// before it calls the consumer stuck. Redeliveries after a throttle may
// take seconds (Asynq forwards retries every few seconds), so it is long;
// it is a guard against hangs, not a latency assertion.
const consumerHangLimit = 60 * time.Second

// stopGrace is how long TestConsumer holds a job in flight after calling
// stop, to see stop wrongly return meanwhile.
const stopGrace = 200 * time.Millisecond

// TestConsumer runs the shared suite that every paced consumer passes (the
// adapters' consumers and a plugin Source of package worker), as subtests
// of t. newQueue makes one fresh empty queue and its consumer; it is
// called once per subtest with that subtest's t, and should register any
// cleanup with it. f says what the backend supports. Every pacer the suite
// gives Consume is fast (1000/s and more), so the subtests take the
// backend's time, not the pace's.
//
// It checks that every job is handled once and each permit's outcome is
// fed back (the pacer's counts match the jobs); that no more jobs run at
// once than the pacer's MaxInFlight, and that many do; and, when
// f.Redelivers, that a job whose handler failed or was throttled is
// handled again and none is lost, and that stop waits for the jobs in
// flight and leaves what it did not handle for the next consumer.
func TestConsumer(t *testing.T, newQueue func(t *testing.T) ConsumerQueue, f ConsumerFeatures) {
	t.Helper()

	t.Run("every job is handled once and its outcome fed back", func(t *testing.T) { consumerOnce(t, newQueue) })

	t.Run("no more jobs run at once than the pacer's MaxInFlight", func(t *testing.T) { consumerCap(t, newQueue) })

	if !f.Redelivers {
		return
	}

	t.Run("a failed or throttled job is handled again, none lost", func(t *testing.T) { consumerRedelivers(t, newQueue) })

	t.Run("stop waits for the jobs in flight and leaves the rest queued", func(t *testing.T) { consumerStop(t, newQueue) })
}

// consumerOnce: 20 jobs, each handled once; the pacer counts 20 successes.
func consumerOnce(t *testing.T, newQueue func(t *testing.T) ConsumerQueue) {
	q := newQueue(t)
	jobs := payloads("once", 20)
	q.Enqueue(t, jobs...)
	p := suitePacer(t, pacer.Config{Rate: 1000, Burst: 20})
	h := newTally()
	stop := q.Consume(t, p, h.handle(nil))
	h.waitDistinct(t, len(jobs), "of 20 jobs")
	stop()
	h.checkOnce(t, jobs)
	s := p.Stats()
	if s.Succeeded != uint64(len(jobs)) || s.InFlight != 0 {
		t.Errorf("after 20 jobs handled with nil: pacer Stats Succeeded %d, InFlight %d (Dispatched %d, Failed %d, Throttled %d); want Succeeded 20, InFlight 0: each job takes a permit and reports its outcome",
			s.Succeeded, s.InFlight, s.Dispatched, s.Failed, s.Throttled)
	}
}

// consumerCap: with MaxInFlight 3 and handlers held, at most and at
// least 3 run at once.
func consumerCap(t *testing.T, newQueue func(t *testing.T) ConsumerQueue) {
	const cap, n = 3, 12
	q := newQueue(t)
	jobs := payloads("cap", n)
	q.Enqueue(t, jobs...)
	p := suitePacer(t, pacer.Config{Rate: 1000, Burst: n, MaxInFlight: cap})
	var running, most atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, n)
	h := newTally()
	stop := q.Consume(t, p, h.handle(func(context.Context, string) error {
		r := running.Add(1)
		for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
		}
		started <- struct{}{}
		<-release
		running.Add(-1)
		return nil
	}))
	// Wait until cap handlers run (or all that are left), then let one
	// finish, and again: a consumer that starts a job past the cap
	// does so while cap others are held, and most shows it.
	deadline := time.After(consumerHangLimit)
	for done := 0; done < n; done++ {
		want := min(cap, n-done)
		for int(running.Load()) < want {
			select {
			case <-started:
			case <-deadline:
				t.Fatalf("%d jobs handled, %d running; want %d running within %v: the consumer is stuck", done, running.Load(), want, consumerHangLimit)
			}
		}
		release <- struct{}{}
	}
	h.waitDistinct(t, n, "of 12 jobs")
	stop()
	if got := most.Load(); got > cap {
		t.Errorf("%d jobs ran at once; want at most the pacer's MaxInFlight, %d", got, cap)
	}
	if got := most.Load(); got < cap {
		t.Errorf("at most %d jobs ran at once with 12 queued; want %d (MaxInFlight): the consumer runs fewer than the pacer allows", got, cap)
	}
	h.checkOnce(t, jobs)
}

// consumerRedelivers: a throttled job and a failed one come again.
func consumerRedelivers(t *testing.T, newQueue func(t *testing.T) ConsumerQueue) {
	q := newQueue(t)
	jobs := payloads("again", 10)
	q.Enqueue(t, jobs...)
	p := suitePacer(t, pacer.Config{Rate: 1000, Burst: 10})
	var mu sync.Mutex
	seen := map[string]int{}
	h := newTally()
	stop := q.Consume(t, p, h.handle(func(_ context.Context, job string) error {
		mu.Lock()
		seen[job]++
		first := seen[job] == 1
		mu.Unlock()
		switch {
		case first && job == jobs[0]:
			return pacer.Throttle(50*time.Millisecond, errors.New("429 from the suite"))
		case first && job == jobs[1]:
			return errors.New("a failure from the suite")
		}
		return nil
	}))
	h.waitOK(t, len(jobs), "of 10 jobs, 2 of them given back once")
	stop()
	mu.Lock()
	defer mu.Unlock()
	for _, j := range jobs[:2] {
		if seen[j] < 2 {
			t.Errorf("job %q handled %d times; want ≥ 2 (given back on its first outcome, then handled again)", j, seen[j])
		}
	}
	s := p.Stats()
	if s.Throttled < 1 || s.Failed < 1 || s.Succeeded < uint64(len(jobs)) {
		t.Errorf("pacer Stats Throttled %d, Failed %d, Succeeded %d; want ≥ 1, ≥ 1 and ≥ 10: the throttle and the failure are fed back as outcomes", s.Throttled, s.Failed, s.Succeeded)
	}
}

// consumerStop: stop waits for the held job; a second consumer handles
// the rest.
func consumerStop(t *testing.T, newQueue func(t *testing.T) ConsumerQueue) {
	const n = 8
	q := newQueue(t)
	jobs := payloads("stop", n)
	q.Enqueue(t, jobs...)
	p := suitePacer(t, pacer.Config{Rate: 1000, Burst: n, MaxInFlight: 1})
	started := make(chan string, n)
	release := make(chan struct{})
	var finished atomic.Bool
	first := newTally()
	stop := q.Consume(t, p, first.handle(func(_ context.Context, job string) error {
		if finished.Load() {
			return pacer.Throttle(10*time.Millisecond, errors.New("a job after the first: given back"))
		}
		started <- job
		<-release
		finished.Store(true)
		return nil
	}))
	var held string
	select {
	case held = <-started:
	case <-time.After(consumerHangLimit):
		t.Fatalf("no job started within %v", consumerHangLimit)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// stop must not return while the job is held. Give it stopGrace to
	// do so wrongly: a wait that can only miss a fault (on a slow
	// machine), never invent one.
	select {
	case <-stopped:
		t.Fatalf("stop returned while the job %q was still running", held)
	case <-time.After(stopGrace):
	}
	close(release)
	<-stopped
	if !finished.Load() {
		t.Fatalf("stop returned before the job in flight (%q) finished", held)
	}
	// A second consumer over the same queue handles the rest: what
	// the first took and did not finish was given back.
	second := newTally()
	stop = q.Consume(t, suitePacer(t, pacer.Config{Rate: 1000, Burst: n}), second.handle(nil))
	defer stop()
	second.waitOKExcept(t, jobs, first.ok(), "left by the first consumer")
}

// suitePacer returns a pacer closed at the end of t, with its controller
// not run (no probe, no adaptation: the suite tests the consumer).
func suitePacer(t *testing.T, c pacer.Config) *pacer.Pacer {
	t.Helper()
	p, err := pacer.New(c)
	if err != nil {
		t.Fatalf("pacer.New(%+v): %v", c, err)
	}
	t.Cleanup(p.Close)
	return p
}

func payloads(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return s
}

// tally counts the calls of a handler and its nil outcomes, by payload.
type tally struct {
	mu      sync.Mutex
	calls   map[string]int
	oks     map[string]int
	changed chan struct{} // closed and replaced on every outcome
}

func newTally() *tally {
	return &tally{calls: map[string]int{}, oks: map[string]int{}, changed: make(chan struct{})}
}

// handle returns the handler given to Consume: it runs inner (nil: return
// nil) and records the outcome.
func (c *tally) handle(inner func(context.Context, string) error) func(context.Context, string) error {
	return func(ctx context.Context, job string) error {
		var err error
		if inner != nil {
			err = inner(ctx, job)
		}
		c.mu.Lock()
		c.calls[job]++
		if err == nil {
			c.oks[job]++
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		return err
	}
}

func (c *tally) ok() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]bool{}
	for j := range c.oks {
		m[j] = true
	}
	return m
}

// waitUntil waits until done holds (called with c.mu held) or fails t
// after consumerHangLimit, saying what it waited for.
func (c *tally) waitUntil(t *testing.T, what string, done func() (bool, string)) {
	t.Helper()
	deadline := time.After(consumerHangLimit)
	for {
		c.mu.Lock()
		ok, state := done()
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited %v for %s: %s", consumerHangLimit, what, state)
		}
	}
}

func (c *tally) waitDistinct(t *testing.T, n int, what string) {
	t.Helper()
	c.waitUntil(t, fmt.Sprintf("%d distinct jobs handled", n), func() (bool, string) {
		return len(c.calls) >= n, fmt.Sprintf("%d distinct %s handled", len(c.calls), what)
	})
}

func (c *tally) waitOK(t *testing.T, n int, what string) {
	t.Helper()
	c.waitUntil(t, fmt.Sprintf("%d jobs handled with nil", n), func() (bool, string) {
		return len(c.oks) >= n, fmt.Sprintf("%d %s handled with nil", len(c.oks), what)
	})
}

// waitOKExcept waits until every job of jobs not in done is handled with
// nil.
func (c *tally) waitOKExcept(t *testing.T, jobs []string, done map[string]bool, what string) {
	t.Helper()
	c.waitUntil(t, fmt.Sprintf("the %d jobs %s", len(jobs)-len(done), what), func() (bool, string) {
		var missing []string
		for _, j := range jobs {
			if !done[j] && c.oks[j] == 0 {
				missing = append(missing, j)
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %v", missing)
	})
}

// checkOnce fails t unless each job was handled exactly once.
func (c *tally) checkOnce(t *testing.T, jobs []string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range jobs {
		if n := c.calls[j]; n != 1 {
			t.Errorf("job %q handled %d times; want once", j, n)
		}
	}
	if len(c.calls) != len(jobs) {
		t.Errorf("%d distinct jobs handled; want the %d enqueued", len(c.calls), len(jobs))
	}
}
