package natspacer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// consumerQueue is a testutil.ConsumerQueue over a stream and durable pull
// consumer of a subtest's own, consumed by natspacer.Consume (stopped by
// Stop, which naks what it holds and waits for the running handlers).
type consumerQueue struct{ f *fixture }

func (q *consumerQueue) Enqueue(t *testing.T, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if _, err := q.f.js.Publish(t.Context(), q.f.subject, []byte(p)); err != nil {
			t.Fatalf("Publish %q: %v", p, err)
		}
	}
}

func (q *consumerQueue) Consume(t *testing.T, p *pacer.Pacer, h func(context.Context, string) error) func() {
	t.Helper()
	c, err := natspacer.Consume(context.Background(), q.f.cons, p,
		natspacer.HandlerFunc(func(ctx context.Context, msg jetstream.Msg) error { return h(ctx, string(msg.Data())) }),
		natspacer.Backoff(func(uint64) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatalf("natspacer.Consume: %v", err)
	}
	return func() {
		c.Stop()
		if err := c.Wait(); err != nil {
			t.Errorf("Consumption.Wait after Stop: %v", err)
		}
	}
}

func TestConsumePassesTheConsumerSuite(t *testing.T) {
	url := natsServer(t).URL()
	testutil.TestConsumer(t, func(t *testing.T) testutil.ConsumerQueue {
		return &consumerQueue{f: newFixture(t, url, jetstream.ConsumerConfig{AckWait: 5 * time.Second})}
	}, testutil.ConsumerFeatures{Redelivers: true})
}
