package pacer

import (
	"context"
	"sync"
)

// slots is a weighted FIFO semaphore: the in-flight cap.
type slots struct {
	mu   sync.Mutex // guards the fields below
	max  int        // the cap; a learned concurrency limit moves it (setMax)
	cur  int
	peak int // the most held since the last takePeak
	q    []*slotWaiter
}

type slotWaiter struct {
	n     int
	ready chan struct{} // closed when granted
}

func (s *slots) acquire(ctx context.Context, n int, closed <-chan struct{}) error {
	s.mu.Lock()
	if len(s.q) == 0 && s.fits(n) {
		s.take(n)
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{n: n, ready: make(chan struct{})}
	s.q = append(s.q, w)
	s.mu.Unlock()
	err := ErrClosed
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-closed:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-w.ready: // granted as we gave up: hand it back
		s.cur -= n
	default:
		for i, x := range s.q {
			if x == w {
				s.q = append(s.q[:i], s.q[i+1:]...)
				break
			}
		}
	}
	s.grant()
	return err
}

func (s *slots) tryAcquire(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.q) == 0 && s.fits(n) {
		s.take(n)
		return true
	}
	return false
}

func (s *slots) release(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur -= n
	s.grant()
}

// grant serves waiters in order while they fit. It requires mu held.
func (s *slots) grant() {
	for len(s.q) > 0 && s.fits(s.q[0].n) {
		w := s.q[0]
		s.q = s.q[1:]
		s.take(w.n)
		close(w.ready)
	}
}

// fits reports whether n more fit under max; n always fits when nothing
// is held, so that a learned limit under n cannot stall it. It requires
// mu held.
func (s *slots) fits(n int) bool { return s.cur+n <= s.max || s.cur == 0 }

// take holds n more. It requires mu held.
func (s *slots) take(n int) {
	s.cur += n
	s.peak = max(s.peak, s.cur)
}

// setMax moves the cap to m (at least 1) and serves the waiters that now
// fit.
func (s *slots) setMax(m int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = max(m, 1)
	s.grant()
}

// takePeak returns the most held since the last call, and starts the
// count again from what is held now.
func (s *slots) takePeak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pk := s.peak
	s.peak = s.cur
	return pk
}

// full reports whether the slots held reach max, or callers wait.
func (s *slots) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur >= s.max || len(s.q) > 0
}
