package sources

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/pacer"
)

type natsSource struct {
	cfg     NATSConfig
	brokers *brokers.Brokers // set by UseBrokers
	nc      *nats.Conn
	sub     atomic.Pointer[natspacer.Subscription] // set by Run
	seq     atomic.Uint64
}

func (s *natsSource) UseBrokers(b *brokers.Brokers) { s.brokers = b }

func (s *natsSource) Connect(ctx context.Context) (pacer.Probe, error) {
	b := s.brokers
	nc, err := b.NATS()
	if err != nil {
		return nil, err
	}
	if s.nc == nil { // a reconnect keeps it: Produce may read it meanwhile
		s.nc = nc
	}
	return pacer.ProbeFunc(func(context.Context) (pacer.Backlog, error) {
		if sub := s.sub.Load(); sub != nil {
			return pacer.Backlog{Pending: int64(sub.Stats().Buffered)}, nil
		}
		return pacer.Backlog{}, nil
	}), nil
}

// Dropped counts the jobs core NATS delivered that were never run: a full
// buffer, the client library's slow-consumer limit, or a drain cut short.
func (s *natsSource) Dropped() uint64 {
	if sub := s.sub.Load(); sub != nil {
		return sub.Stats().Dropped
	}
	return 0
}

func (s *natsSource) Produce(ctx context.Context, payload []byte) error {
	return s.nc.Publish(concrete(s.cfg.Subject), payload)
}

// Run runs natspacer.Subscribe until ctx ends, then drains: core NATS
// cannot take a job back, so what is buffered runs at the pace until the
// drain timeout, and the rest is dropped and counted.
func (s *natsSource) Run(ctx context.Context, env plugin.Env) error {
	h := natspacer.MsgHandlerFunc(func(_ context.Context, m *nats.Msg) error {
		return env.Handle(sink.Job{ID: strconv.FormatUint(s.seq.Add(1), 10), Type: m.Subject, Attempt: 1, Payload: m.Data, Worker: env.Worker})
	})
	// The subscription outlives ctx: Drain, not ctx, ends it.
	opts := []natspacer.SubscribeOption{natspacer.Logger(env.Log.With("worker", env.Worker))}
	if env.MaxInFlight > 0 {
		opts = append(opts, natspacer.Concurrency(env.MaxInFlight))
	} // else natspacer's default
	if s.cfg.Buffer > 0 {
		opts = append(opts, natspacer.Buffer(s.cfg.Buffer))
	}
	sub, err := natspacer.Subscribe(context.WithoutCancel(ctx), s.nc, s.cfg.Subject, s.cfg.Queue, env.Pacer, h, opts...)
	if err != nil {
		return fmt.Errorf("nats source: %w", err)
	}
	s.sub.Store(sub)
	select {
	case <-ctx.Done():
	case <-sub.Closed(): // the pacer was closed
		return sub.Wait()
	}
	dctx, cancel := context.WithTimeout(context.Background(), env.DrainTimeout)
	defer cancel()
	return sub.Drain(dctx)
}
