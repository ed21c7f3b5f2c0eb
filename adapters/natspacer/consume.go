package natspacer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/pacer"
)

// Handler handles one JetStream message for Consume. Its outcome decides
// what happens to the message: nil acks it; an error that is or wraps a
// *pacer.Throttled naks it with the retry-after delay and lowers the pace
// (a long retry-after or a storm also pauses the pacer); an error that
// says the downstream is down or drowning (pacer.Unavailable: a refused
// connection, a timeout) counts as throttled too, with the RetryAfter
// option's delay; any other error naks it with the Backoff delay. A
// handler must not ack, nak or term the message itself.
type Handler interface {
	Handle(ctx context.Context, msg jetstream.Msg) error
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, msg jetstream.Msg) error

// Handle calls f(ctx, msg).
func (f HandlerFunc) Handle(ctx context.Context, msg jetstream.Msg) error { return f(ctx, msg) }

// ErrPanic is wrapped by the outcome of a handler that panicked; the
// message is nakked with the Backoff delay.
var ErrPanic = errors.New("natspacer: handler panicked")

// ErrTerminate, wrapped by a handler's error, says that retrying cannot
// help (a malformed job, an HTTP 400): the consumer sends Term, so the
// server never redelivers the message, and counts it in
// ConsumeStats.Terminated. The pacer counts it as failed.
var ErrTerminate = errors.New("natspacer: terminate, do not redeliver")

// Consumption is a paced JetStream consumption started by Consume. Its
// methods are safe for concurrent use.
//
// A permit travels through these goroutines, one role per file:
//
//   - 2 gatherers (gather.go) acquire permits from the pacer while more
//     are wanted and put them in pool;
//   - 1 fetcher (fetch.go) takes up to MaxBatch permits from pool and
//     sends one Fetch for them, with at most maxFetches out at once;
//   - 1 reader per Fetch out (read.go) matches each message received to
//     a permit, moves it from out to busy, and sends it on work; it gives
//     back (Permit.Cancel) the permits its Fetch did not use;
//   - Concurrency workers (handle.go) run the handler and settle the
//     message (ack, nak, term) and its permit;
//   - 1 supervisor (progress.go) sends InProgress for messages held
//     ProgressEvery, stops the consumption when ctx ends, and shuts it
//     down in order: gatherers and fetcher, then readers, then workers.
//
// The invariant that keeps the channels from blocking: every permit held
// is counted once, in gathering (being acquired), pool, out (asked for by
// a Fetch) or, matched to a message, busy (received, not finished); and
// gathering + len(pool) + out + busy ≤ capacity = cap(work), because a
// gatherer reserves its permits in gathering only up to what wanted()
// allows under capacity. A reader sends on work only messages it has
// moved from out to busy, so len(work) ≤ busy ≤ cap(work) and the send
// never blocks. kickGather and kickFetch hold one wake-up each and are
// sent to only without blocking (kick): a wake-up pending covers a new
// one. stopCh, dropCh and done are closed once. A message held by a
// worker for a throttled retry in place (MaxDeliver, see handle.go) stays
// in busy while it waits without a permit; the permit it runs again with
// is its worker's own Acquire, not a gatherer's, and goes back at its
// end, so the count of permits held by the pool's roles never passes
// capacity.
//
// Within capacity, the window (window.go) bounds the permits held and the
// messages waiting in work; readers resize it after each Fetch, and
// workers wake a gatherer it holds back as messages leave work.
type Consumption struct {
	cons       jetstream.Consumer
	p          *pacer.Pacer
	h          Handler
	cfg        consumeConfig
	clock      pacer.Clock
	log        *slog.Logger
	ctx        context.Context // Consume's: handlers get it
	gctx       context.Context // ends when stopping: cancels the gatherers' Acquire
	gcancel    context.CancelFunc
	capacity   int // the in-flight cap: min(MaxInFlight, MaxAckPending)
	maxFetches int // fetches in flight at most: min(maxFetches, MaxWaiting)
	kickEvery  int // a gatherer is woken each time this many messages finish
	ackWait    time.Duration
	maxDeliver int       // the consumer's MaxDeliver: ≤ 0 is no bound
	start      time.Time // when Consume started, on clock

	busy       atomic.Int64 // messages received, not yet finished
	dropping   atomic.Bool  // Stop: messages not started are nakked, not handled
	maxWait    atomic.Int64 // the longest wait for a handler sampled since the last adjust, ns
	winWaiters atomic.Int32 // gatherers waiting because the window is full
	winKick    atomic.Int64 // while they wait, a start wakes one each time this many wait in work

	mu         sync.Mutex // guards the fields below
	pool       []*pacer.Permit
	out        int       // permits in fetches in flight, not yet matched to a message
	gathering  int       // permits the gatherers are acquiring now
	poolSince  time.Time // when the oldest permit in pool came
	pendingEst int64     // the consumer's NumPending, as last seen
	batches    batchList // fetched batches with messages not yet finished, for InProgress
	fetching   int       // fetches in flight
	retryAt    time.Time // no Fetch before this, after a fetch error
	backoff    time.Duration
	failStreak int           // fetches failed in a row
	window     int           // messages let run ahead of the handlers: see window.go
	rtt        time.Duration // a full Fetch's round trip, averaged
	starved    bool          // since the last adjust, the window kept a due permit from idle handlers
	startRate  float64       // messages finished per second, measured every rateEvery
	rateAt     time.Duration // when startRate was measured, since start
	rateN      uint64        // finished() then
	rateKnown  bool          // startRate was measured
	stopping   bool
	err        error

	kickGather, kickFetch chan struct{} // buffered 1
	work                  chan *job     // capacity: see the invariant above
	stopCh, done          chan struct{}
	dropCh                chan struct{} // closed by Stop: ends the holds of retryInPlace
	stopOnce, dropOnce    sync.Once
	loops, readers        sync.WaitGroup
	workers               sync.WaitGroup

	fetches, fetchErrors, received, acked, nakked, throttled atomic.Uint64
	progress, ackErrors, returned, canceled, terminated      atomic.Uint64
	unstarted, heldInPlace, exhausted                        atomic.Uint64
}

// Consume starts consuming cons at the pace p gives: it acquires one
// permit per message first and then fetches as many messages as it holds
// permits, so no message waits for the pace after it was fetched and none
// outlives its AckWait in a prefetch buffer. Permits are gathered while
// the consumer has messages pending (NumPending, read free from the
// metadata of the last message of each Fetch), within a window that sizes
// itself to the pace, the handlers and the fetch round trip (see the
// package doc), up to MaxBatch per Fetch and the in-flight cap
// (MaxInFlight and the consumer's MaxAckPending); several fetches overlap,
// so at high rates throughput is not capped by round trips. When the
// stream is idle a single permit waits in a long-polling Fetch.
//
// Handlers run on Concurrency goroutines with ctx; outcomes are reported
// to p and to the server as Handler describes. A message held longer than
// ProgressEvery gets InProgress. The permits a Fetch did not use (it came
// back short, or failed) are given back with Permit.Cancel: the pacer
// counts only the messages that ran.
//
// Consume returns once the consumption has started. It ends when ctx
// ends (handlers see ctx end; messages whose handler had not started are
// nakked for immediate redelivery and their permits given back with
// Permit.Cancel), on Drain (no new fetches; messages received are handled
// to the end), on Stop (no new fetches; messages received but not started
// are nakked for immediate redelivery; running handlers finish), or on a
// terminal error (the pacer closed, the consumer or its stream deleted,
// the connection closed, a pull request refused for exceeding the
// consumer's MaxRequestBatch, MaxRequestExpires or MaxRequestMaxBytes).
// Transient errors, such as a server restart, are logged and retried: the
// nats.Conn reconnects by itself when so configured. When fetches keep
// failing (at once if nobody answers the pull request, which is what a
// consumer deleted between fetches looks like), Consumer.Info tells
// whether the consumer is gone.
//
// The consumer's pull request limits are read once, at the start:
// MaxRequestBatch caps MaxBatch, and MaxRequestExpires caps PollWait (see
// PollWait). MaxRequestMaxBytes does not apply: Fetch asks for a number of
// messages, never bytes.
//
// cons must be a pull consumer with AckPolicy explicit. Options:
// Concurrency, MaxInFlight, MaxBatch, PollWait, ProgressEvery, RetryAfter,
// Backoff, BatchLinger, WithProbe, WithClock, Logger.
func Consume(ctx context.Context, cons jetstream.Consumer, p *pacer.Pacer, h Handler, opts ...ConsumeOption) (*Consumption, error) {
	if cons == nil {
		return nil, invalid("consumer", "nil", "a jetstream.Consumer (js.Consumer or js.CreateOrUpdateConsumer)")
	}
	if p == nil {
		return nil, invalid("pacer", "nil", "a *pacer.Pacer from pacer.New")
	}
	if h == nil {
		return nil, invalid("handler", "nil", "a Handler")
	}
	if ctx == nil {
		return nil, invalid("ctx", "nil", "a context.Context")
	}
	cfg := defaultConsume()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.configureConsume(&cfg); err != nil {
			return nil, err
		}
	}
	info := cons.CachedInfo()
	if info == nil {
		var err error
		if info, err = cons.Info(ctx); err != nil {
			return nil, fmt.Errorf("natspacer: reading consumer info: %w", err)
		}
	}
	lim, err := cfg.fit(info)
	if err != nil {
		return nil, err
	}

	c := &Consumption{
		cons: cons, p: p, h: h, cfg: cfg, clock: cfg.clock, ctx: ctx, start: cfg.clock.Now(),
		capacity: lim.capacity, maxFetches: lim.fetches, ackWait: lim.ackWait, window: min(windowMin, lim.capacity),
		maxDeliver: info.Config.MaxDeliver,
		kickEvery:  max(1, min(cfg.maxBatch, lim.capacity)/8),
		log:        cfg.logger.With("stream", info.Stream, "consumer", info.Name),
		pendingEst: int64(info.NumPending),
		kickGather: make(chan struct{}, 1), kickFetch: make(chan struct{}, 1),
		work:   make(chan *job, lim.capacity),
		stopCh: make(chan struct{}), done: make(chan struct{}), dropCh: make(chan struct{}),
	}
	if md := c.maxDeliver; md > 0 && md <= smallMaxDeliver {
		c.log.Warn("natspacer: the consumer's MaxDeliver is small: a throttled job on its last two deliveries is held by its handler slot until its retry-after ends, not nakked; a job that fails, or is stopped, on its last delivery is not delivered again",
			"max_deliver", md)
	}
	c.winKick.Store(1)
	c.gctx, c.gcancel = context.WithCancel(ctx)
	c.loops.Add(gatherers + 1)
	for range gatherers {
		go c.gather()
	}
	go c.fetchLoop()
	workers := min(cfg.concurrency, lim.capacity)
	c.workers.Add(workers)
	for range workers {
		go c.worker()
	}
	go c.supervise()
	return c, nil
}

// smallMaxDeliver is the largest MaxDeliver that Consume warns about.
const smallMaxDeliver = 3

// limits is what Consume derives from its options and the consumer's
// config.
type limits struct {
	capacity int           // the in-flight cap
	fetches  int           // fetches in flight at most
	ackWait  time.Duration // the consumer's
}

// fit checks the options against the consumer's config, last, and lowers
// the defaults and bounds to what the server accepts.
func (cfg *consumeConfig) fit(info *jetstream.ConsumerInfo) (limits, error) {
	if pol := info.Config.AckPolicy; pol != jetstream.AckExplicitPolicy {
		return limits{}, invalid(fmt.Sprintf("consumer %q on stream %q: AckPolicy", info.Name, info.Stream), pol,
			"explicit: a paced consumer acknowledges each message when its handler is done")
	}
	ackWait := info.Config.AckWait
	if ackWait <= 0 {
		ackWait = serverAckWait
	}
	if cfg.progressEvery == 0 {
		cfg.progressEvery = ackWait / 2
	}
	if cfg.progressEvery >= ackWait {
		return limits{}, invalid("ProgressEvery", cfg.progressEvery, fmt.Sprintf("< the consumer's AckWait (%v)", ackWait))
	}
	if mre := info.Config.MaxRequestExpires; mre > 0 && cfg.pollWait > mre {
		if cfg.pollWaitSet {
			return limits{}, invalid("PollWait", cfg.pollWait, fmt.Sprintf("≤ the MaxRequestExpires (%v) of consumer %q on stream %q",
				mre, info.Name, info.Stream))
		}
		cfg.pollWait = mre // the default, lowered to what the server accepts
	}
	lim := limits{capacity: cfg.maxInFlight, fetches: maxFetches, ackWait: ackWait}
	switch mp := info.Config.MaxAckPending; {
	case mp > 0:
		lim.capacity = min(lim.capacity, mp)
	case mp == 0:
		lim.capacity = min(lim.capacity, serverMaxAckPend)
	}
	cfg.maxBatch = min(cfg.maxBatch, lim.capacity)
	if mrb := info.Config.MaxRequestBatch; mrb > 0 {
		cfg.maxBatch = min(cfg.maxBatch, mrb) // the server refuses bigger pull requests
	}
	if mw := info.Config.MaxWaiting; mw > 0 {
		lim.fetches = min(lim.fetches, mw)
	}
	return lim, nil
}

// Drain ends the consumption gracefully, as nats.go's Drain does: it
// stops acquiring and fetching, lets the fetches in flight finish (at
// most PollWait), and handles every message received to the end. It does
// not wait; use Wait or Closed. Drain is idempotent.
func (c *Consumption) Drain() { c.stop(nil) }

// Stop ends the consumption without handling what it holds, as nats.go's
// Stop drops its buffer: it stops acquiring and fetching; messages
// received whose handler has not started (and those the fetches in
// flight still bring) are nakked for immediate redelivery, their permits
// given back with Permit.Cancel; running handlers finish, with their
// outcomes sent. It does not wait; use Wait or Closed. Stop is
// idempotent, and may follow Drain to cut it short.
func (c *Consumption) Stop() {
	c.dropping.Store(true)
	c.dropOnce.Do(func() { close(c.dropCh) })
	c.stop(nil)
}

// Closed returns a channel that is closed once the consumption has stopped
// and every handler has returned.
func (c *Consumption) Closed() <-chan struct{} { return c.done }

// Wait blocks until the consumption has stopped and every handler has
// returned, and returns the terminal error that stopped it, or nil if
// ctx, Drain or Stop did.
func (c *Consumption) Wait() error {
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Consumption) stop(err error) {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopping = true
		c.err = err
		c.mu.Unlock()
		close(c.stopCh)
		c.gcancel()
	})
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
