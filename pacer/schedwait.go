package pacer

import (
	"context"
	"math"
	"time"
)

// The FIFO wait of a schedule: callers that find no token queue, and the
// head sleeps until its tokens are due.

func kick(w *waiter) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// wait takes n tokens, waiting in FIFO order behind earlier waiters. A take
// of more than the capacity is taken in chunks of at most the capacity, so
// it waits for the excess and leaves the bucket empty. A waiter that is
// cancelled gives back what it took and passes the head to the next. It
// returns the ticks at which it took the last tokens, so that a caller
// that stamps the take need not read the clock again.
func (s *sched) wait(ctx context.Context, n float64) (int64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.waiters.Load() == 0 && s.tick == nil && n <= s.cfg.Load().capacity {
		if at, ok := s.take(s.now(), n); ok {
			return at, nil
		}
	}
	w, head := s.join(n)
	defer s.leave(w)
	if !head {
		select {
		case <-w.wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.closed:
			return 0, ErrClosed
		}
	}
	return s.takeAsHead(ctx, w, n)
}

// join queues a waiter for n tokens and reports whether it is the head.
func (s *sched) join(n float64) (w *waiter, head bool) {
	w = &waiter{wake: make(chan struct{}, 1), n: n}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.q) == 0 {
		s.busy.Store(max(now, s.last.Load())) // not before a take: from must not pass the cap
	}
	s.q = append(s.q, w)
	s.queued += n
	s.waiters.Add(1)
	return w, len(s.q) == 1
}

// takeAsHead takes n tokens for w, the head of the queue, on the schedule
// of the busy period, sleeping until each chunk is due.
func (s *sched) takeAsHead(ctx context.Context, w *waiter, n float64) (int64, error) {
	var taken float64
	for {
		now := s.now()
		next := int64(math.MaxInt64)
		if s.tick != nil {
			s.mu.Lock()
			next = s.tick(now)
			s.mu.Unlock()
		}
		c := s.cfg.Load()
		chunk := min(n-taken, c.capacity)
		// While callers wait the bucket is not idle: its schedule runs on
		// from the start of the busy period, uncapped, so a head woken
		// late, by its timer or by the scheduler, takes on the schedule.
		from := s.busy.Load() - c.full
		if s.smooth.Load() {
			from = math.MaxInt64
		}
		if nz, at, ok := s.takeFrom(now, chunk, from); ok {
			if late := at - nz; late > 0 && !s.smooth.Load() {
				// The permits that fell due while we were late stay
				// there for the takers straight after us: for twice the
				// lateness plus creditGrace, so a caller that the OS
				// preempts as it catches up does not lose them.
				s.credit.Store(&credit{floor: nz - c.full, until: at + 2*late + creditGrace, cfg: c})
			}
			taken += chunk
			if taken >= n {
				return at, nil
			}
			if err := ctx.Err(); err != nil { // a take above the capacity, chunk by chunk
				s.refund(s.now(), taken)
				return 0, err
			}
			continue
		}
		sleep := min(s.dueFrom(now, chunk, from), next)
		t := s.clock.NewTimer(time.Duration((sleep - now + ticksPerNano - 1) >> tickShift))
		select {
		case <-t.C():
		case <-w.wake:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			s.refund(s.now(), taken)
			return 0, ctx.Err()
		case <-s.closed:
			t.Stop()
			return 0, ErrClosed
		}
	}
}

// leave removes w from the queue and, if it was the head, wakes the next.
func (s *sched) leave(w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.q {
		if x == w {
			copy(s.q[i:], s.q[i+1:])
			s.q[len(s.q)-1] = nil
			s.q = s.q[:len(s.q)-1]
			s.queued -= w.n
			s.waiters.Add(-1)
			if i == 0 && len(s.q) > 0 {
				kick(s.q[0])
			}
			return
		}
	}
}
