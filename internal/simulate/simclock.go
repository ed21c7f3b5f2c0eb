package simulate

import (
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// simClock is a pacer.Clock for one goroutine whose timers fire at once,
// moving the time forward to their due time.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

func (c *simClock) NewTimer(d time.Duration) pacer.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return simTimer{ch}
}

type simTimer struct{ ch chan time.Time }

func (t simTimer) C() <-chan time.Time { return t.ch }
func (t simTimer) Stop() bool          { return false }
