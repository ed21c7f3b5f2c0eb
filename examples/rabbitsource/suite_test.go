package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
	"github.com/jobpacer/pacer/worker"
)

// suiteQueue is a testutil.ConsumerQueue over a RabbitMQ queue of a
// subtest's own, consumed by this plugin's Source as the runner drives
// one: Connect, then Run with a worker.Env, stopped by cancelling Run's
// context.
type suiteQueue struct {
	url, name string
	ch        *amqp.Channel
}

func (q *suiteQueue) Enqueue(t *testing.T, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := q.ch.PublishWithContext(t.Context(), "", q.name, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(p)}); err != nil {
			t.Fatalf("publish %q to %s: %v", p, q.name, err)
		}
	}
}

func (q *suiteQueue) Consume(t *testing.T, p *pacer.Pacer, h func(context.Context, string) error) func() {
	t.Helper()
	var s worker.Source = &source{cfg: Config{URL: q.url, Queue: q.name}}
	if _, err := s.Connect(t.Context()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, worker.Env{
			Worker:       "suite",
			Pacer:        p,
			Handle:       func(j sink.Job) error { return h(context.Background(), string(j.Payload)) },
			Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
			DrainTimeout: 10 * time.Second,
		})
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after its context ended = %v, want nil", err)
		}
	}
}

// The source passes the suite every paced consumer passes.
func TestSourcePassesTheConsumerSuite(t *testing.T) {
	url := os.Getenv("RABBITMQ_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no RabbitMQ at %s: %v", url, err)
		}
		t.Skipf("no RabbitMQ at %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	n := 0
	testutil.TestConsumer(t, func(t *testing.T) testutil.ConsumerQueue {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		n++
		name := fmt.Sprintf("pacer-consumer-suite-%d-%d", os.Getpid(), n)
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = ch.QueueDelete(name, false, false, false); ch.Close() })
		return &suiteQueue{url: url, name: name, ch: ch}
	}, testutil.ConsumerFeatures{Redelivers: true})
}
