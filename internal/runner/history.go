package runner

import (
	"context"
	"sync"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

const (
	// sampleEvery is the time between two samples of a worker.
	sampleEvery = time.Second
	// historyLen is how many samples a worker keeps: 5 minutes of them.
	historyLen = 300
	// measureOver is how many sample periods the measured pace of
	// /status averages over.
	measureOver = 5
)

// sample is a worker's state at one instant.
type sample struct {
	at         time.Time
	st         pacer.Stats
	done       float64 // jobs done (Succeeded, the DONE of status) per second since the sample before
	throttled  float64 // jobs throttled per second since the sample before
	fleetShare float64 // jobs/s the fleet leaves this process during an outage; 0 without a fleet
	fleetMode  string  // "" without a fleet
	fleetProcs int
}

// history is the ring of a worker's last historyLen samples. It is safe
// for concurrent use: run adds, the admin server reads.
type history struct {
	mu    sync.Mutex // guards ring, n, next, start
	ring  [historyLen]sample
	n     int       // samples held
	next  int       // where the next sample goes
	start time.Time // the time the rates of the first sample count from
}

// run samples every sampleEvery until ctx ends: take returns the worker's
// state at the time given.
func (h *history) run(ctx context.Context, take func(time.Time) sample) {
	h.mu.Lock()
	h.start = time.Now()
	h.mu.Unlock()
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.add(take(now))
		}
	}
}

// add appends s, dropping the oldest sample of a full ring, and sets
// its per-second rates from the sample before it (or from zero counts at
// the start time).
func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	prevAt, prev := h.start, pacer.Stats{}
	if h.n > 0 {
		p := &h.ring[(h.next+historyLen-1)%historyLen]
		prevAt, prev = p.at, p.st
	}
	if dt := s.at.Sub(prevAt).Seconds(); dt > 0 && !prevAt.IsZero() {
		s.done = float64(s.st.Succeeded-prev.Succeeded) / dt
		s.throttled = float64(s.st.Throttled-prev.Throttled) / dt
	}
	h.ring[h.next] = s
	h.next = (h.next + 1) % historyLen
	h.n = min(h.n+1, historyLen)
}

// after returns the samples taken after t, to the millisecond (the
// precision of /samples), oldest first, and the last sample (ok false if
// there is none).
func (h *history) after(t time.Time) (out []sample, last sample, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.n {
		s := h.ring[(h.next-h.n+i+historyLen)%historyLen]
		if s.at.UnixMilli() > t.UnixMilli() {
			out = append(out, s)
		}
	}
	if h.n == 0 {
		return out, sample{}, false
	}
	return out, h.ring[(h.next+historyLen-1)%historyLen], true
}

// measured returns the jobs per second done (Succeeded, the DONE/s of
// status) over the last measureOver sample periods (fewer while the ring
// holds fewer), 0 before two samples.
func (h *history) measured() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n < 2 {
		return 0
	}
	k := min(h.n-1, measureOver)
	last := h.ring[(h.next+historyLen-1)%historyLen]
	first := h.ring[(h.next+historyLen-1-k)%historyLen]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(last.st.Succeeded-first.st.Succeeded) / dt
}
