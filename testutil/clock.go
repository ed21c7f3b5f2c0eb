package testutil

import (
	"sort"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Clock is a fake pacer.Clock for tests: time stands still until Advance
// or Set moves it, and then the timers that fell due fire, in order of
// their due times. It is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex // guards now, timers, changed
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced when the timer set changes
}

// NewClock returns a fake clock set at start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the fake time reaches now + d.
// A timer of d ≤ 0 fires at once.
func (c *Clock) NewTimer(d time.Duration) pacer.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.signal()
	return t
}

// Advance moves the fake time forward by d, firing every timer due by then
// in order of due time; each fires with its own due time as the time.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the fake time to t (never backwards) and fires due timers.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		return
	}
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	n := 0
	for _, tm := range c.timers {
		if tm.at.After(t) {
			break
		}
		tm.ch <- tm.at
		n++
	}
	c.timers = append(c.timers[:0], c.timers[n:]...)
	c.now = t
	if n > 0 {
		c.signal()
	}
}

// Timers returns the number of timers waiting to fire.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns the due time of the earliest pending timer, and false if
// none is pending.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, t := range c.timers {
		if next.IsZero() || t.at.Before(next) {
			next = t.at
		}
	}
	return next, !next.IsZero()
}

// WaitTimers blocks until at least n timers are pending, so a test can
// know that the goroutines it started have gone to sleep on the clock
// before it advances it. It gives up after a minute of real time and
// reports false.
func (c *Clock) WaitTimers(n int) bool {
	deadline := time.After(time.Minute)
	for {
		c.mu.Lock()
		have, ch := len(c.timers), c.changed
		c.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// signal wakes WaitTimers. It requires mu held.
func (c *Clock) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type fakeTimer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			t.c.signal()
			return true
		}
	}
	return false
}
