package testenv

import (
	"errors"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// LimitedDownstream admits Rate calls a second (a token bucket with a
// burst of 5, on the wall clock) and answers the rest "429, retry after
// 1s", as an API at its limit does. It is safe for concurrent use.
type LimitedDownstream struct {
	Rate float64

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time
}

// Call is one request: nil if admitted, else an error that wraps a
// *pacer.Throttled with a retry-after of 1s.
func (d *LimitedDownstream) Call() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.last.IsZero() {
		d.last = now
	}
	d.tokens = min(5, d.tokens+d.Rate*now.Sub(d.last).Seconds())
	d.last = now
	if d.tokens >= 1 {
		d.tokens--
		return nil
	}
	return pacer.Throttle(time.Second, errors.New("429 Too Many Requests"))
}

// QueueingDownstream is a downstream that slows down instead of refusing:
// Servers servers behind a FIFO queue, each call a real sleep of Service
// once a server is free. It never fails. It is safe for concurrent use;
// change Servers with SetServers once calls are made.
type QueueingDownstream struct {
	Servers int
	Service time.Duration

	mu   sync.Mutex // guards Servers (after the first call), busy and q
	busy int
	q    []chan struct{}
}

// SetServers changes the number of servers; jobs queued start as servers
// become free.
func (d *QueueingDownstream) SetServers(n int) {
	d.mu.Lock()
	d.Servers = n
	d.grant()
	d.mu.Unlock()
}

// grant starts the queued calls that have a server. It requires mu held.
func (d *QueueingDownstream) grant() {
	for len(d.q) > 0 && d.busy < d.Servers {
		d.busy++
		close(d.q[0])
		d.q = d.q[1:]
	}
}

// Call is one request: it waits for a server, sleeps Service, and
// returns nil.
func (d *QueueingDownstream) Call() error {
	d.mu.Lock()
	if len(d.q) == 0 && d.busy < d.Servers {
		d.busy++
		d.mu.Unlock()
	} else {
		ch := make(chan struct{})
		d.q = append(d.q, ch)
		d.mu.Unlock()
		<-ch
	}
	time.Sleep(d.Service)
	d.mu.Lock()
	d.busy--
	d.grant()
	d.mu.Unlock()
	return nil
}
