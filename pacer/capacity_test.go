package pacer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// downstream is a simulated rate-limited downstream on the fake clock: a
// token bucket admitting capacity(t) jobs a second with a small burst,
// answering 429 with Retry-After beyond it.
type downstream struct {
	capacity func(t time.Duration) float64
	burst    float64
	tokens   float64
	last     time.Duration
}

func (d *downstream) admit(t time.Duration) bool {
	c := d.capacity(t)
	d.tokens = min(d.burst, d.tokens+c*(t-d.last).Seconds())
	d.last = t
	if d.tokens >= 1 {
		d.tokens--
		return true
	}
	return false
}

type job struct {
	pm      *pacer.Permit
	retry   bool          // a throttled job coming back
	doneAt  time.Duration // when its outcome arrives
	outcome error
	sent    time.Duration
}

// world runs workers against a downstream on the fake clock in steps of
// 1ms: every free worker takes a job (a throttled one whose retry-after
// has passed first, else a new one: the backlog is endless) as soon as
// the pacer admits it; the answer comes latency later.
type world struct {
	t       *testing.T
	p       *pacer.Pacer
	clk     interface{ Advance(time.Duration) }
	now     time.Duration
	workers int
	latency func(t time.Duration, inService int) time.Duration // nil: 5ms
	ds      *downstream
	retryAt []time.Duration // throttled jobs waiting their retry-after
	busy    []job
	events  []event
	period  time.Duration // Step every period; 0: 1s
}

type event struct {
	at        time.Duration
	ok, thr   bool
	latency   time.Duration
	retryOfIt bool
}

func (w *world) run(d time.Duration) {
	end := w.now + d
	if w.period == 0 {
		w.period = time.Second
	}
	for w.now < end {
		w.clk.Advance(time.Millisecond)
		w.now += time.Millisecond
		// answers due now
		keep := w.busy[:0]
		for _, j := range w.busy {
			if j.doneAt > w.now {
				keep = append(keep, j)
				continue
			}
			j.pm.Done(j.outcome)
			_, thr := pacer.IsThrottled(j.outcome)
			w.events = append(w.events, event{at: w.now, ok: j.outcome == nil, thr: thr, latency: j.doneAt - j.sent, retryOfIt: j.retry})
			if thr {
				w.retryAt = append(w.retryAt, w.now+time.Second)
			}
		}
		w.busy = keep
		for len(w.busy) < w.workers {
			pm, ok := w.p.TryAcquire(1)
			if !ok {
				break
			}
			j := job{pm: pm, sent: w.now}
			if len(w.retryAt) > 0 && w.retryAt[0] <= w.now {
				w.retryAt = w.retryAt[1:]
				j.retry = true
			}
			lat := 5 * time.Millisecond
			if w.latency != nil {
				lat = w.latency(w.now, len(w.busy))
			}
			j.doneAt = w.now + lat
			if w.ds != nil && !w.ds.admit(w.now) {
				j.outcome = pacer.Throttle(time.Second, errors.New("429"))
			}
			w.busy = append(w.busy, j)
		}
		if w.now%w.period == 0 {
			w.p.Step(context.Background())
		}
	}
}

// phase returns goodput and the throttled share of attempts answered in
// [from, to).
func (w *world) phase(from, to time.Duration) (goodput, throttled float64) {
	var ok, thr, all int
	for _, e := range w.events {
		if e.at < from || e.at >= to {
			continue
		}
		all++
		if e.ok {
			ok++
		}
		if e.thr {
			thr++
		}
	}
	if all == 0 {
		return 0, 0
	}
	return float64(ok) / (to - from).Seconds(), float64(thr) / float64(all)
}

func (w *world) p90(from, to time.Duration) time.Duration {
	var l []time.Duration
	for _, e := range w.events {
		if e.at >= from && e.at < to {
			l = append(l, e.latency)
		}
	}
	if len(l) == 0 {
		return 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)*9/10]
}

// levels returns a capacity schedule: levels[i] for phase i of length d.
func levels(d time.Duration, lv ...float64) func(time.Duration) float64 {
	return func(t time.Duration) float64 {
		return lv[min(int(t/d), len(lv)-1)]
	}
}

func newWorld(t *testing.T, c pacer.Config, ds *downstream) *world {
	t.Helper()
	p, clk := newPacer(t, c)
	return &world{t: t, p: p, clk: clk, workers: 20, ds: ds}
}

// The pace finds a capacity that moves: per phase, past its first 5s,
// goodput ≥ 0.95 of the capacity and ≤ 2 % of attempts throttled.
func TestCapacityFollowsAMovingLimit(t *testing.T) {
	t.Parallel()
	const phase = 20 * time.Second
	lv := []float64{100, 500, 50, 250}
	ds := &downstream{capacity: levels(phase, lv...), burst: 5}
	w := newWorld(t, pacer.Config{Rate: 2000, Burst: 20, MinFactor: 0.01}, ds)
	w.run(phase * time.Duration(len(lv)))
	for i, c := range lv {
		from, to := time.Duration(i)*phase+5*time.Second, time.Duration(i+1)*phase
		g, thr := w.phase(from, to)
		t.Logf("phase %d: capacity %v, goodput %.1f (%.3f), throttled %.4f", i, c, g, g/c, thr)
		if g/c < 0.95 || thr > 0.02 {
			t.Errorf("phase %d (capacity %v/s): goodput ÷ capacity = %.3f, throttled ÷ attempts = %.4f; want ≥ 0.95 and ≤ 0.02", i, c, g/c, thr)
		}
	}
}

// The capacity rises 5× and falls 10×: each time the pace is where it
// should be within 5s.
func TestCapacityStepUpAndDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		from, to float64
	}{{"step up", 100, 500}, {"step down", 500, 50}} {
		t.Run(tc.name, func(t *testing.T) {
			const change = 20 * time.Second
			ds := &downstream{capacity: levels(change, tc.from, tc.to), burst: 5}
			w := newWorld(t, pacer.Config{Rate: 2000, Burst: 20, MinFactor: 0.01}, ds)
			w.run(change + 15*time.Second)
			g, thr := w.phase(change+5*time.Second, change+15*time.Second)
			if g/tc.to < 0.95 || thr > 0.02 {
				t.Errorf("5–15s after %v → %v/s: goodput ÷ capacity = %.3f, throttled ÷ attempts = %.4f; want ≥ 0.95 and ≤ 0.02", tc.from, tc.to, g/tc.to, thr)
			}
			st := w.p.Stats()
			if st.Reason != pacer.ReasonPushback || math.Abs(st.Capacity/tc.to-1) > 0.1 {
				t.Errorf("Stats: reason %q, capacity %.1f; want pushback, %v ± 10 %%", st.Reason, st.Capacity, tc.to)
			}
		})
	}
}

// steady runs a pacer with an unlimited downstream at its ceiling for 5s.
func steady(t *testing.T, c pacer.Config) *world {
	t.Helper()
	w := newWorld(t, c, nil)
	w.run(5 * time.Second)
	if st := w.p.Stats(); st.Reason != pacer.ReasonCeiling || st.Pace != c.Rate {
		t.Fatalf("before pushback: reason %q, pace %v; want ceiling, %v", st.Reason, st.Pace, c.Rate)
	}
	return w
}

// throttleNext dispatches n jobs now and reports them throttled with
// retry-after d, after 5ms.
func throttleNext(t *testing.T, w *world, n int, d time.Duration) {
	t.Helper()
	var pms []*pacer.Permit
	for len(pms) < n {
		pm, ok := w.p.TryAcquire(1)
		if !ok {
			w.clk.Advance(time.Millisecond)
			w.now += time.Millisecond
			continue
		}
		pms = append(pms, pm)
	}
	w.clk.Advance(5 * time.Millisecond)
	w.now += 5 * time.Millisecond
	for _, pm := range pms {
		pm.Done(pacer.Throttle(d, errors.New("429 Too Many Requests")))
	}
}

func dispatchedIn(w *world, d time.Duration) uint64 {
	before := w.p.Stats().Dispatched
	w.run(d)
	return w.p.Stats().Dispatched - before
}

// One 429 from a downstream at its limit lowers the pace to just under the
// good rate and does not idle the queue: the next second still dispatches
// at the lowered pace.
func TestSingle429AtTheLimitDoesNotPause(t *testing.T) {
	t.Parallel()
	w := steady(t, pacer.Config{Rate: 200, Burst: 5})
	throttleNext(t, w, 1, time.Second)
	st := w.p.Stats()
	if st.Pauses != 0 || !st.PausedUntil.IsZero() || st.Cuts != 1 {
		t.Fatalf("after one 429: pauses %d, paused until %v, cuts %d; want 0, zero, 1", st.Pauses, st.PausedUntil, st.Cuts)
	}
	if st.Reason != pacer.ReasonPushback || st.Pace < 0.9*200 || st.Pace > 0.96*200 {
		t.Fatalf("after one 429: reason %q, pace %.1f; want pushback, just under the good rate 200", st.Reason, st.Pace)
	}
	if n := dispatchedIn(w, time.Second); n < 180 {
		t.Errorf("dispatched %d in the second after one 429, want ≥ 180: the queue must not idle", n)
	}
}

// A storm (most outcomes throttled) pauses the queue for the retry-after,
// and the jobs dispatched together count as one cut.
func TestStormPauses(t *testing.T) {
	t.Parallel()
	w := steady(t, pacer.Config{Rate: 200, Burst: 20, BaseBurst: 20})
	throttleNext(t, w, 300, 800*time.Millisecond) // 1.5 s of jobs, all throttled
	st := w.p.Stats()
	if st.Pauses != 1 || st.PausedUntil.IsZero() {
		t.Fatalf("after a storm: pauses %d, paused until %v; want 1 pause", st.Pauses, st.PausedUntil)
	}
	if d := st.PausedUntil.Sub(w.clk.(interface{ Now() time.Time }).Now()); d != 800*time.Millisecond {
		t.Fatalf("paused for %v, want the retry-after, 800ms", d)
	}
	if n := dispatchedIn(w, 799*time.Millisecond); n != 0 {
		t.Fatalf("%d dispatched during the pause", n)
	}
	if n := dispatchedIn(w, time.Second); n == 0 {
		t.Fatal("nothing dispatched after the pause")
	}
}

// A retry-after of at least PauseAfter pauses the queue, even for one job.
func TestLongRetryAfterPauses(t *testing.T) {
	t.Parallel()
	w := steady(t, pacer.Config{Rate: 200, PauseAfter: 10 * time.Second})
	throttleNext(t, w, 1, 30*time.Second)
	st := w.p.Stats()
	if st.Pauses != 1 || st.Reason != pacer.ReasonPushback {
		t.Fatalf("after a 30s retry-after: pauses %d, reason %q; want 1, pushback", st.Pauses, st.Reason)
	}
	if n := dispatchedIn(w, 30*time.Second-time.Millisecond); n != 0 {
		t.Fatalf("%d dispatched during the 30s pause", n)
	}
	if n := dispatchedIn(w, time.Second); n < 150 {
		t.Fatalf("%d dispatched in the second after the pause, want ≥ 150", n)
	}
	// A retry-after under PauseAfter does not pause.
	throttleNext(t, w, 1, 9*time.Second)
	if st := w.p.Stats(); st.Pauses != 1 {
		t.Fatalf("a 9s retry-after under PauseAfter 10s paused: pauses %d", st.Pauses)
	}
}

// servers is a downstream with n servers and a FIFO queue: a job's latency
// is its wait plus the service time. It never answers 429.
type servers struct {
	free    []time.Duration // when each server is next free
	service time.Duration
}

func (s *servers) latency(now time.Duration, _ int) time.Duration {
	i := 0
	for k := range s.free {
		if s.free[k] < s.free[i] {
			i = k
		}
	}
	start := max(now, s.free[i])
	s.free[i] = start + s.service
	return s.free[i] - now
}

// With a latency target, a downstream that slows down instead of pushing
// back keeps its 90th percentile under the target at ≥ 0.9 of its capacity.
func TestLatencyTarget(t *testing.T) {
	t.Parallel()
	const target = 50 * time.Millisecond
	s := &servers{free: make([]time.Duration, 4), service: 10 * time.Millisecond} // 400/s
	w := newWorld(t, pacer.Config{Rate: 2000, Burst: 20, MinFactor: 0.01, LatencyTarget: target}, nil)
	w.workers = 200
	w.latency = s.latency
	w.run(40 * time.Second)
	g, _ := w.phase(10*time.Second, 40*time.Second)
	p90 := w.p90(10*time.Second, 40*time.Second)
	t.Logf("goodput %.1f/s (%.3f of 400), p90 %v", g, g/400, p90)
	if p90 >= target || g/400 < 0.9 {
		t.Errorf("p90 %v, goodput ÷ capacity %.3f; want < %v and ≥ 0.9", p90, g/400, target)
	}
	if st := w.p.Stats(); st.Reason != pacer.ReasonConcurrency || st.ConcurrencyLimit < 4 || st.ConcurrencyLimit > 8 {
		t.Errorf("reason %q, concurrency limit %d; want concurrency, about the 4 servers", st.Reason, st.ConcurrencyLimit)
	}
}

// When the downstream is not the limit, the backlog rule still raises the
// factor up to the ceiling, and a limit learned from a 429 is probed away.
func TestBacklogRuleStillRaisesTheFactor(t *testing.T) {
	t.Parallel()
	const rate, base = 400, 50
	q := &queue{}
	q.pending.Store(1 << 40) // endless
	p, clk := newPacer(t, pacer.Config{Rate: rate, Base: base, Burst: 20, Probe: q})
	w := &world{t: t, p: p, clk: clk, workers: 20}
	w.run(10 * time.Second)
	if st := p.Stats(); st.Factor != rate/base || st.Reason != pacer.ReasonCeiling {
		t.Fatalf("deep backlog: factor %v, reason %q; want %v, ceiling", st.Factor, st.Reason, rate/base)
	}
	throttleNext(t, w, 1, time.Second) // a stray 429
	if st := p.Stats(); st.Reason != pacer.ReasonPushback || st.Pace >= rate {
		t.Fatalf("after a 429: reason %q, pace %v; want pushback, under %v", st.Reason, st.Pace, rate)
	}
	w.run(10 * time.Second)
	if st := p.Stats(); st.Factor != rate/base || st.Reason != pacer.ReasonCeiling || st.Capacity != 0 {
		t.Fatalf("10s after a stray 429: factor %v, reason %q, capacity %v; want %v, ceiling, 0", st.Factor, st.Reason, st.Capacity, rate/base)
	}
	// The backlog drains: the factor sinks back to 1, the base pace.
	q.pending.Store(0)
	w.run(30 * time.Second)
	if st := p.Stats(); st.Factor != 1 || st.Reason != pacer.ReasonBacklog {
		t.Fatalf("no backlog: factor %v, reason %q; want 1, backlog", st.Factor, st.Reason)
	}
}

// A downstream that is down (every attempt refused, reported as Throttled
// by the sink) takes the pace down to the floor instead of spending
// attempts at full speed; when it answers again the pace probes back.
func TestDownDownstreamLowersThePaceAndProbesBack(t *testing.T) {
	t.Parallel()
	ds := &downstream{capacity: levels(10*time.Second, 200, 0, 200, 200), burst: 5}
	w := newWorld(t, pacer.Config{Rate: 1000, Burst: 20, MinFactor: 0.01}, ds)
	w.run(10 * time.Second)
	before := w.p.Stats().Dispatched
	w.run(10 * time.Second)
	if n := w.p.Stats().Dispatched - before; n > 300 {
		t.Errorf("%d attempts in 10s against a downstream that is down, want ≤ 300 (30/s)", n)
	}
	w.run(15 * time.Second)
	if g, _ := w.phase(25*time.Second, 35*time.Second); g < 0.95*200 {
		t.Errorf("goodput 5–15s after the downstream came back = %.1f, want ≥ 190", g)
	}
}

// A pushback that changes the pace is logged once at INFO, not per job.
func TestPushbackLoggedOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	w := steady(t, pacer.Config{Rate: 200, Burst: 20, BaseBurst: 20, Logger: log})
	throttleNext(t, w, 3, time.Second)
	if n := strings.Count(buf.String(), "pace lowered"); n != 1 || !strings.Contains(buf.String(), "reason=pushback") {
		t.Fatalf("3 throttled jobs of one event logged %d lines, want 1 with reason=pushback:\n%s", n, buf.String())
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("400 Bad Request"), false},
		{fmt.Errorf("calling the API: %w", refused), true},
		{fmt.Errorf("calling the API: %w", context.DeadlineExceeded), true},
		{&net.DNSError{Err: "i/o timeout", IsTimeout: true}, true},
		{context.Canceled, false},
	} {
		if got := pacer.Unavailable(tc.err); got != tc.want {
			t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// While the downstream's capacity limits the pace, callers woken late (by
// a busy machine) do not catch up on the schedule in a burst the
// downstream would throttle: at most the burst passes at once. Without a
// limit the schedule catches up, as it is made to (exact rate).
func TestNoCatchUpBurstUnderAPushbackLimit(t *testing.T) {
	for _, limited := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, pacer.Config{Rate: 100, Burst: 5}, nil)
			w.run(2 * time.Second)
			if limited {
				throttleNext(t, w, 1, time.Second)
				if st := w.p.Stats(); st.Reason != pacer.ReasonPushback {
					t.Fatalf("after a 429: reason %q, want pushback", st.Reason)
				}
			}
			clk := w.clk.(*testutil.Clock)
			ctx, cancel := context.WithCancel(context.Background())
			var granted atomic.Int64
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					for {
						pm, err := w.p.Acquire(ctx, 1)
						if err != nil {
							return
						}
						granted.Add(1)
						pm.Done(nil)
					}
				})
			}
			synctest.Wait()
			before := granted.Load()
			clk.Advance(200 * time.Millisecond) // every waiter wakes 200ms late
			synctest.Wait()
			burst := granted.Load() - before
			cancel()
			wg.Wait()
			if limited && burst > 6 {
				t.Errorf("under a pushback limit, %d permits at the same instant after a 200ms late wake, want ≤ the burst (5) + 1", burst)
			}
			if !limited && burst < 15 {
				t.Errorf("at the ceiling, %d permits at once after a 200ms late wake, want the schedule's ~20 (exact rate)", burst)
			}
			t.Logf("limited %v: %d permits at once after a 200ms late wake", limited, burst)
		})
	}
}
