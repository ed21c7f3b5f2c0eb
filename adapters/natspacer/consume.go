package natspacer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
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
type Consumption struct {
	cons       jetstream.Consumer
	p          *pacer.Pacer
	h          Handler
	cfg        config
	log        *slog.Logger
	ctx        context.Context // Consume's: handlers get it
	gctx       context.Context // ends when stopping: cancels the gatherers' Acquire
	gcancel    context.CancelFunc
	capacity   int // the in-flight cap: min(MaxInFlight, MaxAckPending)
	maxFetches int // fetches in flight at most: min(maxFetches, MaxWaiting)
	kickEvery  int // a gatherer is woken each time this many messages finish
	ackWait    time.Duration

	busy atomic.Int64 // messages received, not yet finished

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
	failStreak int // fetches failed in a row
	stopping   bool
	err        error

	kickGather, kickFetch chan struct{} // buffered 1
	work                  chan *job
	stopCh, done          chan struct{}
	stopOnce              sync.Once
	loops, readers        sync.WaitGroup
	workers               sync.WaitGroup

	fetches, fetchErrors, received, acked, nakked, throttled atomic.Uint64
	progress, ackErrors, returned, canceled, terminated      atomic.Uint64
	unstarted                                                atomic.Uint64
}

// job is one message received, with its permit.
type job struct {
	msg  jetstream.Msg
	pm   *pacer.Permit
	b    *batch
	done atomic.Bool // finished: no InProgress for it any more
	// mu makes "done is false, send InProgress" and "set done, send the
	// ack, nak or term" exclusive, so that no InProgress follows the
	// outcome: a late one would restart the AckWait of a NakWithDelay.
	// (nats.go refuses InProgress after a nak, but checks before it
	// publishes, so the two can still cross without this.)
	mu sync.Mutex
}

// batch is the messages one Fetch delivered, tracked together for
// InProgress: their AckWait runs from about the same time.
type batch struct {
	remaining atomic.Int32 // jobs not finished, plus 1 while the batch is read

	jobs []job // one per permit of the Fetch; jobs[:n] received

	// guarded by Consumption.mu:
	n          int
	touched    time.Time // received, or last InProgress
	prev, next *batch    // in Consumption.batches, oldest touched first
}

// batchList is an intrusive doubly linked list of batches.
type batchList struct{ head, tail *batch }

func (l *batchList) pushBack(b *batch) {
	b.prev, b.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = b
	} else {
		l.head = b
	}
	l.tail = b
}

func (l *batchList) remove(b *batch) {
	if b.prev != nil {
		b.prev.next = b.next
	} else if l.head == b {
		l.head = b.next
	} else {
		return // not in the list
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		l.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

// release marks one reference to b finished, and drops b from the
// InProgress list after the last.
func (c *Consumption) release(b *batch) {
	if b.remaining.Add(-1) == 0 {
		c.mu.Lock()
		c.batches.remove(b)
		c.mu.Unlock()
	}
}

// Consume starts consuming cons at the pace p gives: it acquires one
// permit per message first and then fetches as many messages as it holds
// permits, so no message waits for the pace after it was fetched and none
// outlives its AckWait in a prefetch buffer. Permits are gathered while
// the consumer has messages pending (NumPending, read free from the
// metadata of the last message of each Fetch), up to MaxBatch per Fetch
// and the in-flight cap (MaxInFlight and the consumer's MaxAckPending);
// several fetches overlap, so at high rates throughput is not capped by
// round trips. When the stream is idle a single permit waits in a
// long-polling Fetch.
//
// Handlers run on Concurrency goroutines with ctx; outcomes are reported
// to p and to the server as Handler describes. A message held longer than
// ProgressEvery gets InProgress. The permits a Fetch did not use (it came
// back short, or failed) are given back with Permit.Cancel: the pacer
// counts only the messages that ran.
//
// Consume returns once the consumption has started. It stops when ctx
// ends (handlers see ctx end; messages whose handler had not started are
// nakked for immediate redelivery and their permits given back with
// Permit.Cancel), when Stop is called (no new fetches; messages received
// are handled to the end), or on a terminal error (the pacer closed, the
// consumer or its stream deleted, the connection closed, a pull request
// refused for exceeding the consumer's MaxRequestBatch, MaxRequestExpires
// or MaxRequestMaxBytes). Transient errors, such as a server restart, are
// logged and retried: the nats.Conn reconnects by itself when so
// configured. When fetches keep failing (at once if nobody answers the
// pull request, which is what a consumer deleted between fetches looks
// like), Consumer.Info tells whether the consumer is gone.
//
// The consumer's pull request limits are read once, at the start:
// MaxRequestBatch caps MaxBatch, and MaxRequestExpires caps PollWait (see
// PollWait). MaxRequestMaxBytes does not apply: Fetch asks for a number of
// messages, never bytes.
//
// cons must be a pull consumer with AckPolicy explicit. Options: Concurrency,
// MaxInFlight, MaxBatch, PollWait, ProgressEvery, RetryAfter, Backoff,
// BatchLinger, WithProbe, Logger.
func Consume(ctx context.Context, cons jetstream.Consumer, p *pacer.Pacer, h Handler, opts ...Option) (*Consumption, error) {
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
	cfg := config{concurrency: 16, maxBatch: 256, linger: 2 * time.Millisecond, pollWait: time.Second, retryAfter: time.Second,
		backoff: DefaultBackoff, logger: slog.Default()}
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	if len(cfg.subscribeOnly) > 0 {
		return nil, fmt.Errorf("natspacer: %w: option %s applies to Subscribe, not Consume", ErrInvalid, cfg.subscribeOnly[0])
	}
	info := cons.CachedInfo()
	if info == nil {
		var err error
		if info, err = cons.Info(ctx); err != nil {
			return nil, fmt.Errorf("natspacer: reading consumer info: %w", err)
		}
	}
	if pol := info.Config.AckPolicy; pol != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("natspacer: %w: consumer %q on stream %q has AckPolicy = %v, want explicit: "+
			"a paced consumer acknowledges each message when its handler is done", ErrInvalid, info.Name, info.Stream, pol)
	}
	ackWait := info.Config.AckWait
	if ackWait <= 0 {
		ackWait = 30 * time.Second // the server's default
	}
	if cfg.progressEvery == 0 {
		cfg.progressEvery = ackWait / 2
	}
	if cfg.progressEvery >= ackWait {
		return nil, invalid("ProgressEvery", cfg.progressEvery, fmt.Sprintf("< the consumer's AckWait (%v)", ackWait))
	}
	if cfg.maxInFlight == 0 {
		cfg.maxInFlight = cfg.concurrency
	}
	capacity := cfg.maxInFlight
	switch map_ := info.Config.MaxAckPending; {
	case map_ > 0:
		capacity = min(capacity, map_)
	case map_ == 0:
		capacity = min(capacity, 1000) // the server's default
	}
	cfg.maxBatch = min(cfg.maxBatch, capacity)
	if mrb := info.Config.MaxRequestBatch; mrb > 0 {
		cfg.maxBatch = min(cfg.maxBatch, mrb) // the server refuses bigger pull requests
	}
	if mre := info.Config.MaxRequestExpires; mre > 0 && cfg.pollWait > mre {
		if slices.Contains(cfg.consumeOnly, "PollWait") {
			return nil, invalid("PollWait", cfg.pollWait, fmt.Sprintf("≤ the MaxRequestExpires (%v) of consumer %q on stream %q",
				mre, info.Name, info.Stream))
		}
		cfg.pollWait = mre // the default, lowered to what the server accepts
	}
	fetches := maxFetches
	if mw := info.Config.MaxWaiting; mw > 0 {
		fetches = min(fetches, mw)
	}

	c := &Consumption{
		cons: cons, p: p, h: h, cfg: cfg, ctx: ctx, capacity: capacity, maxFetches: fetches, ackWait: ackWait,
		kickEvery:  max(1, min(cfg.maxBatch, capacity)/8),
		log:        cfg.logger.With("stream", info.Stream, "consumer", info.Name),
		pendingEst: int64(info.NumPending),
		kickGather: make(chan struct{}, 1), kickFetch: make(chan struct{}, 1),
		work:   make(chan *job, capacity),
		stopCh: make(chan struct{}), done: make(chan struct{}),
	}
	c.gctx, c.gcancel = context.WithCancel(ctx)
	c.loops.Add(gatherers + 1)
	for range gatherers {
		go c.gather()
	}
	go c.fetchLoop()
	workers := min(cfg.concurrency, capacity)
	c.workers.Add(workers)
	for range workers {
		go c.worker()
	}
	go c.supervise()
	return c, nil
}

// Stop stops the consumption gracefully: it stops acquiring and fetching,
// lets the fetches in flight finish (at most PollWait), and handles every
// message received to the end. It does not wait; use Wait or Closed. Stop
// is idempotent.
func (c *Consumption) Stop() { c.stop(nil) }

// Closed returns a channel that is closed once the consumption has stopped
// and every handler has returned.
func (c *Consumption) Closed() <-chan struct{} { return c.done }

// Wait blocks until the consumption has stopped and every handler has
// returned, and returns the terminal error that stopped it, or nil if ctx
// or Stop did.
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

// supervise stops the consumption when ctx ends and shuts it down in
// order once it is stopping.
func (c *Consumption) supervise() {
	tick := time.NewTicker(max(c.cfg.progressEvery/4, 5*time.Millisecond))
	defer tick.Stop()
	ctxDone := c.ctx.Done()
	for stopped := false; !stopped; {
		select {
		case <-ctxDone:
			c.stop(nil)
			ctxDone = nil
		case <-c.stopCh:
			stopped = true
		case now := <-tick.C:
			c.touch(now)
		}
	}
	// Gatherer and fetcher end at once; the fetches in flight end within
	// PollWait and hand their messages to the workers.
	loopsDone := make(chan struct{})
	go func() { c.loops.Wait(); c.readers.Wait(); close(loopsDone) }()
	for waiting := true; waiting; {
		select {
		case <-loopsDone:
			waiting = false
		case now := <-tick.C:
			c.touch(now)
		}
	}
	c.mu.Lock()
	pool := c.pool
	c.pool = nil
	c.mu.Unlock()
	for _, pm := range pool {
		pm.Cancel() // never used: give it back, no outcome
	}
	c.returned.Add(uint64(len(pool)))
	close(c.work)
	workersDone := make(chan struct{})
	go func() { c.workers.Wait(); close(workersDone) }()
	for waiting := true; waiting; {
		select {
		case <-workersDone:
			waiting = false
		case now := <-tick.C:
			c.touch(now)
		}
	}
	close(c.done)
}

// touch sends InProgress for every unfinished message of each batch held
// ProgressEvery or longer since it was received or last touched.
func (c *Consumption) touch(now time.Time) {
	var due []*job
	c.mu.Lock()
	for b := c.batches.head; b != nil && now.Sub(b.touched) >= c.cfg.progressEvery; b = c.batches.head {
		b.touched = now
		c.batches.remove(b)
		c.batches.pushBack(b)
		for i := range b.jobs[:b.n] {
			if j := &b.jobs[i]; !j.done.Load() {
				due = append(due, j)
			}
		}
	}
	c.mu.Unlock()
	for _, j := range due {
		j.mu.Lock()
		if j.done.Load() {
			j.mu.Unlock()
			continue
		}
		if c.cfg.progressHook != nil {
			c.cfg.progressHook(j.done.Load)
		}
		err := j.msg.InProgress()
		j.mu.Unlock()
		if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			c.ackErrors.Add(1)
			c.log.Warn("natspacer: InProgress failed; the message may be redelivered after AckWait", "err", err)
			continue
		}
		c.progress.Add(1)
	}
}

// wanted returns how many more permits are wanted now: the in-flight cap
// less what is held, and no more than the consumer has pending (at least
// one, for the long poll that waits for new messages). It requires mu
// held.
func (c *Consumption) wanted() int {
	if c.stopping {
		return 0
	}
	held := len(c.pool) + c.out + c.gathering
	free := c.capacity - held - int(c.busy.Load())
	return max(0, min(free, int(max(1, c.pendingEst))-held))
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// maxFetches is how many Fetch requests one consumption keeps waiting on
// the server at most. The server refuses pull requests past the
// consumer's MaxWaiting (512 by default) for all its workers together;
// and while the fetches are all out, permits gather in the pool, so the
// next Fetch carries more of them.
const maxFetches = 4

// gatherers is how many goroutines wait in Acquire at once when more than
// one permit is wanted. The pacer runs its schedule on, uncapped, while
// callers queue (a waiter woken late takes what fell due meanwhile); a
// caller that comes back after the queue emptied finds a bucket capped at
// Burst. With two gatherers one of them is always waiting while the other
// hands its permit over, however busy the machine.
const gatherers = 2

// gather acquires permits one at a time while they are wanted and puts
// them in the pool. When permits are there at once (a high or unlimited
// pace) it reserves and acquires a run of them and hands them over
// together; otherwise one at a time, each as soon as it is given.
func (c *Consumption) gather() {
	defer c.loops.Done()
	var got []*pacer.Permit
	for {
		c.mu.Lock()
		for !c.stopping && (c.wanted() == 0 || c.gathering >= c.capacity) {
			c.mu.Unlock()
			select {
			case <-c.kickGather:
			case <-c.stopCh:
			}
			c.mu.Lock()
		}
		if c.stopping {
			c.mu.Unlock()
			kick(c.kickGather) // pass the stop on to the other gatherer
			return
		}
		n := 1
		if w := c.wanted(); w > 1 && c.p.EstimateWait(1) <= 0 {
			n = min(w, c.cfg.maxBatch)
		}
		c.gathering += n
		others := c.wanted() > 0
		c.mu.Unlock()
		if others {
			kick(c.kickGather) // the other gatherer may wait in Acquire too
		}

		var err error
		reserved := n
		got = got[:0]
		for i := 0; i < n; i++ {
			var pm *pacer.Permit
			if pm, err = c.p.Acquire(c.gctx, 1); err != nil {
				break
			}
			got = append(got, pm)
			if i+1 < n && c.p.EstimateWait(1) > 0 {
				c.hand(got, len(got)) // the rest will take a while: hand these over now
				reserved -= len(got)
				got = got[:0]
			}
		}
		c.hand(got, reserved)
		if err != nil {
			if c.ctx.Err() != nil {
				c.stop(nil) // ctx ended: a stop, not a failure
			} else {
				c.stop(fmt.Errorf("natspacer: acquiring a permit: %w", err)) // no-op if already stopping
			}
			return
		}
	}
}

// hand puts permits into the pool and ends the reservation of reserved
// permits (len(pms) of which were got).
func (c *Consumption) hand(pms []*pacer.Permit, reserved int) {
	c.mu.Lock()
	c.gathering -= reserved
	if len(pms) > 0 {
		if len(c.pool) == 0 {
			c.poolSince = time.Now()
		}
		c.pool = append(c.pool, pms...)
	}
	n := len(c.pool)
	c.mu.Unlock()
	if len(pms) > 0 && (n == len(pms) || n >= c.cfg.maxBatch) {
		kick(c.kickFetch)
	}
}

// fetchLoop fetches as many messages as the pool holds permits, up to
// MaxBatch at a time, and hands each batch to a reader. While the next
// permit falls due within BatchLinger of the pool's oldest, it waits for
// it, so that at high rates one round trip fetches several messages; at
// low rates each permit is fetched as soon as it is given.
func (c *Consumption) fetchLoop() {
	defer c.loops.Done()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		c.mu.Lock()
		for !c.stopping && (len(c.pool) == 0 || c.fetching >= c.maxFetches) {
			c.mu.Unlock()
			select {
			case <-c.kickFetch:
			case <-c.stopCh:
			}
			c.mu.Lock()
		}
		if c.stopping {
			c.mu.Unlock()
			return
		}
		if wait := time.Until(c.retryAt); wait > 0 {
			c.mu.Unlock()
			select {
			case <-time.After(wait):
			case <-c.stopCh:
			}
			continue
		}
		// More permits come soon while a gatherer waits in Acquire, or
		// while handlers run (each frees a slot of the in-flight cap).
		if len(c.pool) < c.cfg.maxBatch && (c.gathering > 0 || c.busy.Load() > 0) {
			if wait := time.Until(c.poolSince.Add(c.cfg.linger)); wait > 0 {
				c.mu.Unlock()
				if c.p.EstimateWait(1) < wait {
					linger.Reset(wait)
					select {
					case <-linger.C:
					case <-c.kickFetch: // the pool is full, or stopping
						linger.Stop()
					case <-c.stopCh:
					}
					continue
				}
				c.mu.Lock()
			}
		}
		k := min(len(c.pool), c.cfg.maxBatch)
		pms := append([]*pacer.Permit(nil), c.pool[:k]...)
		c.pool = append(c.pool[:0], c.pool[k:]...)
		if len(c.pool) > 0 {
			c.poolSince = time.Now()
		}
		c.out += k
		c.fetching++
		c.mu.Unlock()

		batch, err := c.cons.Fetch(k, jetstream.FetchMaxWait(c.cfg.pollWait))
		if err != nil {
			c.mu.Lock()
			c.fetching--
			c.mu.Unlock()
			// Hold no permits through the backoff: one is gathered again
			// for the retry, more once messages show up.
			c.giveBack(pms, true)
			if c.fetchFailed(err) {
				return
			}
			continue
		}
		c.fetches.Add(1)
		c.readers.Add(1)
		go c.read(batch, pms)
	}
}

// giveBack gives back to the pacer the permits a Fetch did not use
// (Permit.Cancel: no outcome, not dispatched). dry means the consumer had
// no more messages: until the next message says otherwise, one permit is
// wanted, for the long poll.
func (c *Consumption) giveBack(pms []*pacer.Permit, dry bool) {
	for _, pm := range pms {
		pm.Cancel()
	}
	c.returned.Add(uint64(len(pms)))
	c.mu.Lock()
	c.out -= len(pms)
	if dry {
		c.pendingEst = 0
	}
	c.mu.Unlock()
	kick(c.kickFetch)
	kick(c.kickGather)
}

// checkAfter is how many fetches in a row may fail before Consumer.Info is
// asked whether the consumer still exists.
const checkAfter = 3

// fetchFailed logs a fetch error, stops the consumption and reports true
// if it is terminal, or else backs off the next Fetch.
func (c *Consumption) fetchFailed(err error) (terminal bool) {
	c.fetchErrors.Add(1)
	c.mu.Lock()
	c.failStreak++
	streak := c.failStreak
	c.mu.Unlock()
	var stopErr error
	switch {
	case requestLimitErr(err):
		stopErr = fmt.Errorf("natspacer: fetching: %w (the consumer's pull request limits are lower than when Consume "+
			"read them: start Consume again)", err)
	case terminalErr(err):
		stopErr = fmt.Errorf("natspacer: fetching: %w", err)
	case errors.Is(err, nats.ErrNoResponders) || streak >= checkAfter:
		// Nobody answers pull requests for a consumer deleted while no
		// Fetch waited on it (those that wait get "consumer deleted"); a
		// server that is still starting looks the same, so ask.
		if gone := c.consumerGone(); gone != nil {
			stopErr = fmt.Errorf("natspacer: fetching: %w; consumer info: %w", err, gone)
		}
	}
	if stopErr != nil {
		c.mu.Lock()
		already := c.stopping
		c.mu.Unlock()
		if !already { // each fetch in flight may fail the same way: log once
			c.log.Error("natspacer: fetch failed; stopping", "err", stopErr)
		}
		c.stop(stopErr)
		return true
	}
	c.mu.Lock()
	c.backoff = min(max(2*c.backoff, 50*time.Millisecond), 2*time.Second)
	c.retryAt = time.Now().Add(c.backoff)
	d := c.backoff
	c.mu.Unlock()
	c.log.Warn("natspacer: fetch failed; retrying", "err", err, "retry_in", d)
	return false
}

// consumerGone asks the server for the consumer's info and returns the
// error if it says the consumer or its stream does not exist, else nil.
func (c *Consumption) consumerGone() error {
	ctx, cancel := context.WithTimeout(c.gctx, 2*time.Second)
	defer cancel()
	_, err := c.cons.Info(ctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	return nil
}

func terminalErr(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound)
}

// requestLimitErr reports whether err is the server's 409 refusing a pull
// request past the consumer's MaxRequestBatch, MaxRequestExpires or
// MaxRequestMaxBytes ("Exceeded MaxRequestBatch of 10"). nats.go passes
// it on as an error with that text only.
func requestLimitErr(err error) bool {
	return strings.Contains(err.Error(), "Exceeded MaxRequest")
}

// read hands each message of a Fetch, with its permit, to the workers,
// and gives the permits the Fetch did not use back to the pool. It takes
// the messages that arrived together as a group, under one lock. It parses
// the metadata of the last message only: its NumPending is the newest,
// and parsing every reply subject would cost more than a raw consumer
// spends on the whole message.
func (c *Consumption) read(mb jetstream.MessageBatch, pms []*pacer.Permit) {
	defer c.readers.Done()
	b := &batch{jobs: make([]job, len(pms))} // one allocation for the Fetch's jobs
	b.remaining.Store(1)                     // the reader's own reference
	msgs := mb.Messages()
	i := 0
	var last jetstream.Msg
	for msg := range msgs {
		from := i
		for msg != nil {
			if i == len(pms) { // more than asked for: cannot happen, but never hold it
				_ = msg.Nak()
				c.log.Error("natspacer: a Fetch returned more messages than asked for; nakked the extra", "asked", len(pms))
			} else {
				b.jobs[i] = job{msg: msg, pm: pms[i], b: b}
				i++
				last = msg
			}
			if i-from == 64 {
				break
			}
			select { // take what else has arrived, without waiting
			case msg = <-msgs:
			default:
				msg = nil
			}
		}
		g := i - from
		if g == 0 {
			continue
		}
		now := time.Now()
		b.remaining.Add(int32(g))
		c.busy.Add(int64(g))
		c.mu.Lock()
		c.out -= g
		if b.n == 0 {
			b.touched = now
			c.batches.pushBack(b)
		}
		b.n = i
		c.mu.Unlock()
		c.received.Add(uint64(g))
		for k := from; k < i; k++ {
			c.work <- &b.jobs[k] // never blocks: busy ≤ capacity = cap(work)
		}
	}
	c.release(b)
	err := mb.Error()
	var md *jetstream.MsgMetadata
	if last != nil {
		var merr error
		if md, merr = last.Metadata(); merr != nil {
			c.log.Warn("natspacer: message metadata does not parse", "err", merr)
		} else if c.cfg.probe != nil {
			c.cfg.probe.Observe(md)
		}
	}
	c.mu.Lock()
	c.fetching--
	if md != nil {
		c.pendingEst = int64(md.NumPending)
	}
	if err == nil {
		c.backoff = 0
		c.failStreak = 0
	}
	c.mu.Unlock()
	if i < len(pms) {
		// Dry only if no message came: a short Fetch's last message
		// carries the newest NumPending, kept above.
		c.giveBack(pms[i:], err == nil && last == nil)
	} else {
		kick(c.kickFetch)
		kick(c.kickGather)
	}
	if err != nil {
		c.fetchFailed(err)
	}
}

func (c *Consumption) worker() {
	defer c.workers.Done()
	for j := range c.work {
		c.handle(j)
	}
}

func (c *Consumption) handle(j *job) {
	var err error
	started := true
	if cerr := c.ctx.Err(); cerr != nil {
		err, started = cerr, false // consumption cancelled: do not start it
	} else {
		err = c.call(j.msg)
		if err != nil && c.ctx.Err() == nil && pacer.Unavailable(err) {
			if _, throttled := pacer.IsThrottled(err); !throttled {
				err = pacer.Throttle(0, err) // the downstream is down or drowning: pushback
			}
		}
	}

	j.mu.Lock() // no InProgress from touch after this
	j.done.Store(true)
	var aerr error
	if err == nil { // the common case first: IsThrottled allocates
		aerr = j.msg.Ack()
		c.acked.Add(1)
	} else if retry, throttled := pacer.IsThrottled(err); throttled {
		if retry <= 0 {
			retry = c.cfg.retryAfter
		}
		aerr = j.msg.NakWithDelay(retry)
		c.throttled.Add(1)
	} else if errors.Is(err, ErrTerminate) {
		aerr = j.msg.Term()
		c.terminated.Add(1)
	} else if c.ctx.Err() != nil && errors.Is(err, c.ctx.Err()) {
		aerr = j.msg.Nak() // redeliver at once, to whoever consumes next
		c.canceled.Add(1)
	} else {
		delivered := uint64(1)
		if md, merr := j.msg.Metadata(); merr == nil {
			delivered = md.NumDelivered
		}
		aerr = j.msg.NakWithDelay(c.cfg.backoff(delivered))
		c.nakked.Add(1)
	}
	j.mu.Unlock()
	if aerr != nil && !errors.Is(aerr, jetstream.ErrMsgAlreadyAckd) {
		c.ackErrors.Add(1)
		c.log.Warn("natspacer: acknowledging a message failed; the server redelivers it after AckWait", "err", aerr)
	}
	if started {
		j.pm.Done(err)
	} else {
		j.pm.Cancel() // it never ran: no outcome, the permit goes back
		c.unstarted.Add(1)
	}

	c.release(j.b)
	// Wake a gatherer each kickEvery finished messages, not for every
	// one: at high rates a wake-up per message costs more than the
	// message. (A gatherer that waits for the pace needs no wake-up.)
	if c.busy.Add(-1)%int64(c.kickEvery) == 0 {
		kick(c.kickGather)
	}
}

// call runs the handler, turning a panic into an error.
func (c *Consumption) call(msg jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("natspacer: handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return c.h.Handle(c.ctx, msg)
}

// ConsumeStats counts what a Consumption did.
type ConsumeStats struct {
	Fetches     uint64 // Fetch requests sent to the server (a Fetch that failed before sending is not counted)
	FetchErrors uint64 // fetches that failed, before sending or in the answer (logged, retried unless terminal)
	Received    uint64 // messages received
	Acked       uint64 // messages acked after their handler succeeded
	Nakked      uint64 // messages nakked with the Backoff delay after a handler error
	Throttled   uint64 // messages nakked with the retry-after delay after a throttled outcome
	Canceled    uint64 // messages nakked for immediate redelivery because ctx ended, Unstarted included
	Unstarted   uint64 // of Canceled, messages whose handler never started: their permits were given back (Permit.Cancel)
	Terminated  uint64 // messages sent Term after a handler error wrapping ErrTerminate
	Progress    uint64 // InProgress signals sent
	AckErrors   uint64 // acks, naks and InProgress that failed to send (logged)
	Returned    uint64 // permits given back with no message (Permit.Cancel): a Fetch came back short, failed, or the consumption stopped
	InFlight    int    // messages received and not finished
	Permits     int    // permits held and not yet matched to a message
}

// Stats returns a snapshot of the consumption's counters.
func (c *Consumption) Stats() ConsumeStats {
	c.mu.Lock()
	inFlight, permits := int(c.busy.Load()), len(c.pool)+c.out
	c.mu.Unlock()
	return ConsumeStats{
		Fetches: c.fetches.Load(), FetchErrors: c.fetchErrors.Load(),
		Received: c.received.Load(), Acked: c.acked.Load(), Nakked: c.nakked.Load(),
		Throttled: c.throttled.Load(), Canceled: c.canceled.Load(), Progress: c.progress.Load(),
		AckErrors: c.ackErrors.Load(), Returned: c.returned.Load(), Terminated: c.terminated.Load(),
		Unstarted: c.unstarted.Load(),
		InFlight:  inFlight, Permits: permits,
	}
}
