package sources

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxDone bounds the stream sequences a resume remembers above its floor
// (8 bytes each). Beyond it the lowest are forgotten: those jobs may run
// again if the consumer is recreated.
const maxDone = 1 << 16

// refreshAt is how many remembered sequences make Run read the
// consumer's ack floor with Consumer.Info (at most once a refreshEvery),
// so that the set shrinks also when other workers share the consumer.
const (
	refreshAt    = 1024
	refreshEvery = time.Second
)

// resume is what a JetStream source remembers of its durable consumer
// across Connects, so that a consumer it has to recreate (deleted while
// pacer ran) starts where the old one was, not at the first message of
// the stream:
//
//   - floor: every job of the consumer at or below this stream sequence
//     was settled (acked or terminated). It is the consumer's ack floor
//     as last read by Consumer.Info (the probe reads it when the stream
//     is idle, Run when many jobs are remembered), extended over the
//     sequences settled here right above it.
//   - done: the stream sequences above floor whose job this source
//     settled itself (out of order, or past a gap), sorted.
//
// A recreated consumer starts at floor+1 (DeliverByStartSequence), and a
// job whose sequence is at or below floor or in done is acked without
// running: with limits retention none of the jobs this process settled
// runs again. Jobs that other processes sharing the consumer settled
// above the floor last read can.
//
// It is safe for concurrent use.
type resume struct {
	mu      sync.Mutex
	created time.Time // the stream's creation time, to see a stream made anew
	cons    time.Time // the creation time of the consumer the state is for
	floor   uint64
	done    []uint64
	made    uint64 // the start sequence of a consumer made from the floor, until Run logs it
}

// settled records that the job at stream sequence seq was settled.
func (r *resume) settled(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq <= r.floor {
		return
	}
	i, found := slices.BinarySearch(r.done, seq)
	if found {
		return
	}
	r.done = slices.Insert(r.done, i, seq)
	r.compact()
	if len(r.done) > maxDone {
		// Forget the lowest (they may run again), but keep the floor:
		// the gaps between them are jobs not settled.
		r.done = slices.Delete(r.done, 0, len(r.done)-maxDone)
	}
}

// seen reports whether the job at stream sequence seq was settled already.
func (r *resume) seen(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq <= r.floor {
		return true
	}
	_, found := slices.BinarySearch(r.done, seq)
	return found
}

// observe raises the floor to the ack floor of info, when info is for the
// consumer the state is for.
func (r *resume) observe(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !info.Created.Equal(r.cons) || info.AckFloor.Stream <= r.floor {
		return
	}
	r.floor = info.AckFloor.Stream
	i, _ := slices.BinarySearch(r.done, r.floor+1)
	r.done = slices.Delete(r.done, 0, i)
	r.compact()
}

// compact extends the floor over the sequences right above it. r.mu is
// held.
func (r *resume) compact() {
	n := 0
	for n < len(r.done) && r.done[n] == r.floor+1 {
		r.floor++
		n++
	}
	r.done = slices.Delete(r.done, 0, n)
}

// remembered returns how many sequences are remembered above the floor.
func (r *resume) remembered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.done)
}

// reset forgets everything: the stream or the consumer is not the one the
// state was for. That includes which consumer it was for, so that an ack
// floor read from that consumer (its cached info) is never taken for the
// new one's. r.mu is held.
func (r *resume) reset() {
	r.floor, r.done, r.cons, r.made = 0, nil, time.Time{}, 0
}

// streamIs records the creation time of the stream the source consumes,
// and forgets the state if it is another stream than before (deleted and
// made anew: its sequences start again at 1).
func (r *resume) streamIs(created time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !created.Equal(r.created) {
		r.reset()
		r.created = created
	}
}

// consumer returns the durable consumer described by cfg on stream,
// creating it if it does not exist. An existing consumer keeps where it
// starts (its DeliverPolicy and start cannot be updated): if it is not
// the one the state is for (made by someone else), the state is
// forgotten. A consumer made here starts right after the floor, unless
// the stream is a work queue (where it must deliver all, and the jobs
// acked are gone anyway).
func (r *resume) consumer(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	old, err := stream.Consumer(ctx, cfg.Durable)
	existed := err == nil
	switch {
	case existed:
		oc := old.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = oc.DeliverPolicy, oc.OptStartSeq, oc.OptStartTime
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		r.mu.Lock()
		if r.floor > 0 && stream.CachedInfo().Config.Retention != jetstream.WorkQueuePolicy {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.floor+1
		}
		r.mu.Unlock()
	default:
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream.CachedInfo().Config.Name, cfg)
	if err != nil {
		return nil, err
	}
	info := cons.CachedInfo()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !existed:
		r.cons = info.Created // made here, from the floor
		r.made = cfg.OptStartSeq
	case !old.CachedInfo().Created.Equal(r.cons):
		r.reset() // not the consumer the state is for
		r.cons = info.Created
	}
	return cons, nil
}

// refresh reads the consumer's ack floor when many sequences are
// remembered, or else takes it from the last Info anyone made.
func (r *resume) refresh(ctx context.Context, cons jetstream.Consumer) error {
	r.observe(cons.CachedInfo())
	if r.remembered() < refreshAt {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, refreshEvery)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("jetstream source: reading the ack floor: %w", err)
	}
	r.observe(info)
	return nil
}

// recreated returns, once, the start sequence of the consumer made from
// the floor by the last Connect (0 if it made none, or it started at the
// first message), and how many sequences above it are remembered.
func (r *resume) recreated() (start uint64, above int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start, r.made = r.made, 0
	return start, len(r.done)
}
