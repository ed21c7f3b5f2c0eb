package natspacer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/pacer"
)

var _ pacer.Probe = (*Probe)(nil)

// Probe reads a JetStream consumer's backlog for a pacer.Pacer: Pending is
// the consumer's NumPending (messages matching its filter not yet
// delivered) and OldestAge an upper bound on the age of the oldest of them
// (the age of the message delivered last; zero when read by Info, which
// cannot tell).
//
// Every message a consumer delivers carries NumPending and its stream
// timestamp in its reply subject, for free. Consume, given WithProbe,
// hands the probe that metadata for the last message of each Fetch (the
// newest); a sample then reads the newest one observed and costs nothing. Only when no message has arrived since the last sample
// (the stream is idle, or the pacer paused) does the probe ask the server
// with one Consumer.Info call.
//
// NumAckPending (delivered, not yet acknowledged) is not added to Pending:
// it counts the messages being handled right now, here and by other
// workers, so adding it would make the factor chase its own in-flight
// count. The last value read by Info is reported in ProbeStats.
//
// A Probe is safe for concurrent use.
type Probe struct {
	cons jetstream.Consumer
	now  func() time.Time

	mu      sync.Mutex // guards the fields below
	seen    bool       // a message was observed since the last sample
	pending uint64     // NumPending of the newest observed message
	stamp   time.Time  // stream timestamp of the newest observed message
	lastSeq uint64     // its consumer sequence, to keep the newest

	samples, infoCalls, observed atomic.Uint64
	ackPending                   atomic.Int64
}

// NewProbe returns a Probe for cons. It panics if cons is nil, a
// programming error.
func NewProbe(cons jetstream.Consumer) *Probe {
	if cons == nil {
		panic("natspacer: NewProbe: consumer is nil")
	}
	return &Probe{cons: cons, now: time.Now}
}

// Observe records the metadata of a message just delivered by the
// consumer. Consume, given WithProbe, calls it for the last message of
// each Fetch, the one with the newest NumPending; call it yourself if you
// consume the messages some other way.
func (p *Probe) Observe(md *jetstream.MsgMetadata) {
	if md == nil {
		return
	}
	p.observed.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	// With several fetches in flight, messages can be observed out of
	// order: keep the one delivered last, by consumer sequence (which
	// counts redeliveries too).
	if md.Sequence.Consumer >= p.lastSeq || !p.seen {
		p.lastSeq = md.Sequence.Consumer
		p.pending = md.NumPending
		p.stamp = md.Timestamp
	}
	p.seen = true
}

// Backlog implements pacer.Probe: the newest observed NumPending if a
// message arrived since the last call, else one Consumer.Info call.
func (p *Probe) Backlog(ctx context.Context) (pacer.Backlog, error) {
	p.samples.Add(1)
	p.mu.Lock()
	if p.seen {
		p.seen = false
		b := pacer.Backlog{Pending: int64(p.pending)}
		if p.pending > 0 {
			// The oldest pending message is no older than the one just
			// delivered: new messages are delivered in stream order.
			b.OldestAge = max(p.now().Sub(p.stamp), 0)
		}
		p.mu.Unlock()
		return b, nil
	}
	p.mu.Unlock()

	p.infoCalls.Add(1)
	info, err := p.cons.Info(ctx)
	if err != nil {
		return pacer.Backlog{}, fmt.Errorf("natspacer: reading consumer info for the backlog: %w", err)
	}
	p.ackPending.Store(int64(info.NumAckPending))
	b := pacer.Backlog{Pending: int64(info.NumPending)}
	return b, nil // Info cannot tell the oldest pending message's age
}

// ProbeStats counts what a Probe did.
type ProbeStats struct {
	Samples    uint64 // Backlog calls
	InfoCalls  uint64 // of which went to the server with Consumer.Info
	Observed   uint64 // Observe calls: with Consume, one per Fetch that brought messages
	AckPending int64  // NumAckPending as of the last Info call
}

// Stats returns what the probe did so far.
func (p *Probe) Stats() ProbeStats {
	return ProbeStats{
		Samples: p.samples.Load(), InfoCalls: p.infoCalls.Load(),
		Observed: p.observed.Load(), AckPending: p.ackPending.Load(),
	}
}
