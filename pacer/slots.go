package pacer

import (
	"context"
	"sync"
)

// slots is a weighted FIFO semaphore: the in-flight cap.
type slots struct {
	mu  sync.Mutex // guards cur and q
	max int
	cur int
	q   []*slotWaiter
}

type slotWaiter struct {
	n     int
	ready chan struct{} // closed when granted
}

func (s *slots) acquire(ctx context.Context, n int, closed <-chan struct{}) error {
	s.mu.Lock()
	if len(s.q) == 0 && s.cur+n <= s.max {
		s.cur += n
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
	if len(s.q) == 0 && s.cur+n <= s.max {
		s.cur += n
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
	for len(s.q) > 0 && s.cur+s.q[0].n <= s.max {
		w := s.q[0]
		s.q = s.q[1:]
		s.cur += w.n
		close(w.ready)
	}
}
