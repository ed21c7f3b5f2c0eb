// Command rabbitsource is pacer with a RabbitMQ source, built on the
// plugin API of package worker: kind "rabbitmq" consumes a queue at the
// pace its pacer admits, acks a job the sink handled, requeues one that
// failed and rejects one that failed for good (sink.ErrPermanent).
//
//	go run ./examples/rabbitsource run -c examples/rabbitsource/config.toml --demo
//
// The source is an example, not a product: it does not reconnect (Run
// returns an error when the connection drops, and the worker stops), and
// it counts attempts only as 1 or "redelivered" (2), except on quorum
// queues, whose x-delivery-count it reads.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/worker"
)

func main() {
	worker.RegisterSource("rabbitmq", newSource)
	os.Exit(worker.Main(os.Args))
}

// Config is the [worker.source] table of kind "rabbitmq".
type Config struct {
	// URL is the AMQP URL of the broker. The default value is
	// "amqp://guest:guest@127.0.0.1:5672/".
	URL string `toml:"url"`
	// Queue is the queue to consume, declared durable if it does not
	// exist. Required.
	Queue string `toml:"queue"`
	// Prefetch is how many jobs the broker hands out before they are
	// acked (waiting for the pace or running). The default value is the
	// worker's max_in_flight, or 16 without one.
	Prefetch int `toml:"prefetch"`
}

func newSource(o worker.Options) (worker.Source, error) {
	var c Config
	if err := o.Decode(&c); err != nil {
		return nil, err
	}
	if c.URL == "" {
		c.URL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if c.Queue == "" {
		return nil, o.Errorf("queue", `missing: want the queue's name, such as "jobs"`)
	}
	if c.Prefetch < 0 {
		return nil, o.Errorf("prefetch", "%d: want ≥ 0 (0: max_in_flight, or 16)", c.Prefetch)
	}
	return &source{cfg: c}, nil
}

// source consumes one queue. conn carries three channels: one for the
// deliveries and their acks, one for the backlog probe (which the pacer's
// controller calls from its own goroutine) and one for Produce.
type source struct {
	cfg  Config
	conn *amqp.Connection
	ch   *amqp.Channel

	probeMu sync.Mutex // guards probeCh
	probeCh *amqp.Channel

	pubMu sync.Mutex // guards pubCh
	pubCh *amqp.Channel
}

// Connect dials the broker, declares the queue and returns a probe that
// reads the queue's ready messages.
func (s *source) Connect(context.Context) (pacer.Probe, error) {
	conn, err := amqp.Dial(s.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq %s: %w", s.cfg.URL, err)
	}
	chans := make([]*amqp.Channel, 3)
	for i := range chans {
		if chans[i], err = conn.Channel(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("rabbitmq: channel: %w", err)
		}
	}
	s.conn, s.ch, s.probeCh, s.pubCh = conn, chans[0], chans[1], chans[2]
	if _, err := s.ch.QueueDeclare(s.cfg.Queue, true, false, false, false, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("rabbitmq: queue %s: %w", s.cfg.Queue, err)
	}
	return pacer.ProbeFunc(func(context.Context) (pacer.Backlog, error) {
		s.probeMu.Lock()
		defer s.probeMu.Unlock()
		q, err := s.probeCh.QueueDeclarePassive(s.cfg.Queue, true, false, false, false, nil)
		if err != nil {
			return pacer.Backlog{}, err
		}
		return pacer.Backlog{Pending: int64(q.Messages)}, nil
	}), nil
}

// Produce publishes a persistent job to the queue: pacer run --demo uses
// it.
func (s *source) Produce(ctx context.Context, payload []byte) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return s.pubCh.PublishWithContext(ctx, "", s.cfg.Queue, false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: payload})
}

// Run consumes the queue: each delivery waits for the pacer, then runs in
// a goroutine of its own and is acked, requeued or rejected by its
// outcome. When ctx ends it cancels the consumer, requeues what was
// delivered and not started, waits for the jobs in flight (at most
// env.DrainTimeout) and closes the connection, which requeues whatever is
// still not acked.
func (s *source) Run(ctx context.Context, env worker.Env) error {
	defer s.conn.Close()
	prefetch := s.cfg.Prefetch
	if prefetch == 0 {
		prefetch = env.MaxInFlight
	}
	if prefetch == 0 {
		prefetch = 16
	}
	if err := s.ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("rabbitmq: qos: %w", err)
	}
	tag := fmt.Sprintf("pacer-%s-%d", env.Worker, os.Getpid())
	deliveries, err := s.ch.Consume(s.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq: consume %s: %w", s.cfg.Queue, err)
	}
	var inflight sync.WaitGroup
	var lost error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case d, ok := <-deliveries:
			if !ok {
				lost = errors.New("rabbitmq: the deliveries stopped: connection or channel closed")
				break loop
			}
			pm, err := env.Pacer.Acquire(ctx, 1)
			if err != nil { // ctx ended, or the pacer was closed
				_ = d.Nack(false, true)
				break loop
			}
			inflight.Go(func() {
				out := env.Handle(job(d, env.Worker))
				pm.Done(out)
				switch {
				case out == nil:
					_ = d.Ack(false)
				case errors.Is(out, sink.ErrPermanent):
					_ = d.Reject(false) // dead-lettered if the queue says so, else dropped
				default:
					_ = d.Nack(false, true)
				}
			})
		}
	}
	if lost == nil {
		_ = s.ch.Cancel(tag, false)
		for d := range deliveries { // delivered before the cancel, not started
			_ = d.Nack(false, true)
		}
	}
	drained := make(chan struct{})
	go func() { inflight.Wait(); close(drained) }()
	t := time.NewTimer(env.DrainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		env.Log.Warn("drain timeout: jobs not finished go back to the queue", "worker", env.Worker)
	}
	return lost
}

// job makes the sink's job of a delivery.
func job(d amqp.Delivery, worker string) sink.Job {
	j := sink.Job{ID: d.MessageId, Type: d.RoutingKey, Payload: d.Body, Worker: worker, Attempt: 1}
	if j.ID == "" {
		j.ID = strconv.FormatUint(d.DeliveryTag, 10)
	}
	if d.Type != "" {
		j.Type = d.Type
	}
	if n, ok := d.Headers["x-delivery-count"].(int64); ok {
		j.Attempt = int(n) + 1
	} else if d.Redelivered {
		j.Attempt = 2
	}
	return j
}
