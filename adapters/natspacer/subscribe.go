package natspacer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jobpacer/pacer/pacer"
)

// MsgHandler handles one core NATS message for Subscribe. Its outcome is
// reported to the pacer: nil is success, an error that is or wraps a
// *pacer.Throttled is pushback (the pacer lowers its pace; a long
// retry-after or a storm pauses it), any other error is a failure.
// Core NATS is at-most-once: nothing is redelivered either way.
type MsgHandler interface {
	HandleMsg(ctx context.Context, msg *nats.Msg) error
}

// MsgHandlerFunc adapts a function to the MsgHandler interface.
type MsgHandlerFunc func(ctx context.Context, msg *nats.Msg) error

// HandleMsg calls f(ctx, msg).
func (f MsgHandlerFunc) HandleMsg(ctx context.Context, msg *nats.Msg) error { return f(ctx, msg) }

// Subscription is a paced core NATS subscription started by Subscribe. Its
// methods are safe for concurrent use.
type Subscription struct {
	sub     *nats.Subscription
	p       *pacer.Pacer
	h       MsgHandler
	ctx     context.Context // Subscribe's: handlers get it
	actx    context.Context // ends when stopping: cancels Acquire
	acancel context.CancelFunc
	log     *slog.Logger
	clock   pacer.Clock

	mu      sync.RWMutex // guards closed and bufShut against the delivery callback
	closed  bool         // no more messages go into buf
	bufShut bool         // buf is closed (Drain), so workers end when it is empty
	buf     chan *nats.Msg

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
	workers  sync.WaitGroup
	err      error // set before stopCh closes

	received, handled, failed, throttled    atomic.Uint64
	droppedFull, droppedStop, droppedClient atomic.Uint64
	loggedDrops                             atomic.Uint64
	lastLog                                 atomic.Int64 // unix nanos of the last drop log
}

// Subscribe subscribes nc to subject (in queue group queue, unless empty)
// and runs h on each message at the pace p gives, on Concurrency
// goroutines with ctx. Messages wait for the pace in a buffer of Buffer
// messages; one that arrives when the buffer is full is dropped. Core NATS
// is at-most-once, so a drop is final: every one is counted (Stats) and
// logged (at most once a second, with the count), never silent. The
// client library's own slow-consumer drops are counted too.
//
// The subscription stops when ctx ends, on Stop, or when p is closed;
// messages still buffered then are dropped and counted. Drain instead
// runs what is buffered first. Options: Concurrency, Buffer, WithClock,
// Logger.
func Subscribe(ctx context.Context, nc *nats.Conn, subject, queue string, p *pacer.Pacer, h MsgHandler, opts ...SubscribeOption) (*Subscription, error) {
	if ctx == nil {
		return nil, invalid("ctx", "nil", "a context.Context")
	}
	if nc == nil {
		return nil, invalid("conn", "nil", "a connected *nats.Conn")
	}
	if subject == "" {
		return nil, invalid("subject", `""`, "a subject, wildcards allowed")
	}
	if p == nil {
		return nil, invalid("pacer", "nil", "a *pacer.Pacer from pacer.New")
	}
	if h == nil {
		return nil, invalid("handler", "nil", "a MsgHandler")
	}
	cfg := defaultSubscribe()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.configureSubscribe(&cfg); err != nil {
			return nil, err
		}
	}
	s := &Subscription{
		p: p, h: h, ctx: ctx, clock: cfg.clock,
		log:    cfg.logger.With("subject", subject, "queue", queue),
		buf:    make(chan *nats.Msg, cfg.buffer),
		stopCh: make(chan struct{}), done: make(chan struct{}),
	}
	s.actx, s.acancel = context.WithCancel(ctx)
	var err error
	if queue == "" {
		s.sub, err = nc.Subscribe(subject, s.deliver)
	} else {
		s.sub, err = nc.QueueSubscribe(subject, queue, s.deliver)
	}
	if err != nil {
		s.acancel()
		return nil, fmt.Errorf("natspacer: subscribing to %q: %w", subject, err)
	}
	s.workers.Add(cfg.concurrency)
	for range cfg.concurrency {
		go s.worker()
	}
	go s.supervise()
	return s, nil
}

// deliver is the subscription's callback: it never blocks.
func (s *Subscription) deliver(msg *nats.Msg) {
	s.received.Add(1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.droppedStop.Add(1)
		return
	}
	select {
	case s.buf <- msg:
	default:
		s.droppedFull.Add(1)
		s.logDrops(false)
	}
}

// logDrops logs the drops not yet logged, at most once a second unless
// final.
func (s *Subscription) logDrops(final bool) {
	now := s.clock.Now().UnixNano()
	last := s.lastLog.Load()
	if !final && now-last < int64(time.Second) {
		return
	}
	if !s.lastLog.CompareAndSwap(last, now) && !final {
		return
	}
	st := s.Stats()
	total := st.Dropped
	if n := total - s.loggedDrops.Swap(total); n > 0 || (final && total > 0) {
		s.log.Warn("natspacer: core NATS messages dropped (at-most-once: they are gone)",
			"dropped", n, "dropped_total", total, "buffer_full", st.DroppedFull,
			"at_stop", st.DroppedAtStop, "slow_consumer", st.DroppedSlowConsumer)
	}
}

func (s *Subscription) worker() {
	defer s.workers.Done()
	for {
		var msg *nats.Msg
		select {
		case m, ok := <-s.buf:
			if !ok { // drained: Drain closed the buffer and it is empty
				return
			}
			msg = m
		case <-s.stopCh:
			return
		}
		pm, err := s.p.Acquire(s.actx, 1)
		if err != nil {
			s.droppedStop.Add(1) // stopping, or the pacer closed
			if errors.Is(err, pacer.ErrClosed) {
				s.stop(fmt.Errorf("natspacer: acquiring a permit: %w", err))
			}
			continue
		}
		err = s.call(msg)
		s.handled.Add(1)
		if err != nil { // IsThrottled allocates: not for the common case
			if _, ok := pacer.IsThrottled(err); ok {
				s.throttled.Add(1)
			} else {
				s.failed.Add(1)
			}
		}
		pm.Done(err)
	}
}

func (s *Subscription) call(msg *nats.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("natspacer: handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return s.h.HandleMsg(s.ctx, msg)
}

// Stop unsubscribes and stops the subscription: messages still buffered
// are dropped and counted; handlers running finish. It does not wait; use
// Wait or Closed. Stop is idempotent.
func (s *Subscription) Stop() { s.stop(nil) }

func (s *Subscription) stop(err error) {
	s.stopOnce.Do(func() {
		s.err = err
		close(s.stopCh)
	})
}

// Drain stops taking new messages, runs the ones already buffered at the
// pace until the buffer is empty or ctx ends, then stops as Stop does
// (what is left is dropped and counted) and waits for the handlers. It
// returns what Wait returns. Use it for a graceful shutdown: core NATS
// cannot take a message back, so the buffer is run, not dropped.
func (s *Subscription) Drain(ctx context.Context) error {
	s.slowDrops() // the last read: Dropped fails once unsubscribed
	s.mu.Lock()
	s.closed = true // messages still arriving are dropped and counted
	if !s.bufShut {
		s.bufShut = true
		close(s.buf) // the workers run what is in it, then end
	}
	s.mu.Unlock()
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		s.log.Warn("natspacer: unsubscribing", "err", err)
	}
	idle := make(chan struct{})
	go func() { s.workers.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-ctx.Done():
	case <-s.done:
	}
	s.Stop() // what a cut-short drain leaves is dropped and counted
	return s.Wait()
}

// Closed returns a channel that is closed once the subscription has
// stopped and every handler has returned.
func (s *Subscription) Closed() <-chan struct{} { return s.done }

// Wait blocks until the subscription has stopped and every handler has
// returned, and returns the error that stopped it, or nil if ctx or Stop
// did.
func (s *Subscription) Wait() error {
	<-s.done
	return s.err
}

func (s *Subscription) supervise() {
	select {
	case <-s.ctx.Done():
		s.stop(nil)
	case <-s.stopCh:
	}
	s.slowDrops() // the last read: Dropped fails once unsubscribed
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		s.log.Warn("natspacer: unsubscribing", "err", err)
	}
	s.acancel()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.workers.Wait()
	for {
		select {
		case _, ok := <-s.buf:
			if ok {
				s.droppedStop.Add(1)
				continue
			}
		default:
		}
		break
	}
	s.logDrops(true)
	close(s.done)
}

// SubscribeStats counts what a Subscription did. Received = Handled +
// Dropped + Buffered + the messages waiting for a permit or running.
type SubscribeStats struct {
	Received            uint64 // messages delivered to the subscription
	Handled             uint64 // handler calls that returned
	Failed              uint64 // of which returned an error other than Throttled
	Throttled           uint64 // of which returned a Throttled outcome
	Dropped             uint64 // DroppedFull + DroppedAtStop + DroppedSlowConsumer
	DroppedFull         uint64 // dropped because the buffer was full
	DroppedAtStop       uint64 // buffered or waiting for a permit when the subscription stopped
	DroppedSlowConsumer uint64 // dropped by the client library (its pending limits), before the buffer
	Buffered            int    // messages in the buffer now
}

// slowDrops reads the client library's drop count while the subscription
// is valid, and returns the last count read.
func (s *Subscription) slowDrops() uint64 {
	if n, err := s.sub.Dropped(); err == nil {
		for {
			old := s.droppedClient.Load()
			if uint64(n) <= old || s.droppedClient.CompareAndSwap(old, uint64(n)) {
				break
			}
		}
	}
	return s.droppedClient.Load()
}

// Stats returns a snapshot of the subscription's counters.
func (s *Subscription) Stats() SubscribeStats {
	slow := s.slowDrops()
	st := SubscribeStats{
		Received: s.received.Load() + slow, Handled: s.handled.Load(),
		Failed: s.failed.Load(), Throttled: s.throttled.Load(),
		DroppedFull: s.droppedFull.Load(), DroppedAtStop: s.droppedStop.Load(),
		DroppedSlowConsumer: slow, Buffered: len(s.buf),
	}
	st.Dropped = st.DroppedFull + st.DroppedAtStop + st.DroppedSlowConsumer
	return st
}
