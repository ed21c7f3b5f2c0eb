package asynqpacer_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// consumerQueue is a testutil.ConsumerQueue over one Asynq queue of a
// subtest's own, on real Redis, consumed by an asynq.Server whose handlers
// pass through asynqpacer.Middleware (serverConfig's settings, with
// retries of plain failures after 100ms instead of Asynq's default
// seconds).
type consumerQueue struct {
	addr, name string
}

func (q *consumerQueue) Enqueue(t *testing.T, payloads ...string) {
	t.Helper()
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: q.addr})
	defer c.Close()
	for _, p := range payloads {
		if _, err := c.Enqueue(asynq.NewTask("consumer-suite", []byte(p)), asynq.Queue(q.name)); err != nil {
			t.Fatalf("Enqueue %q to %s: %v", p, q.name, err)
		}
	}
}

func (q *consumerQueue) Consume(t *testing.T, p *pacer.Pacer, h func(context.Context, string) error) func() {
	t.Helper()
	cfg := serverConfig(q.name, 8)
	cfg.RetryDelayFunc = func(n int, err error, task *asynq.Task) time.Duration {
		if asynqpacer.IsFailure(err) {
			return 100 * time.Millisecond
		}
		return asynqpacer.RetryDelay(n, err, task)
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: q.addr}, cfg)
	mux := asynq.NewServeMux()
	mux.Use(mustMiddleware(p))
	mux.HandleFunc("consumer-suite", func(ctx context.Context, task *asynq.Task) error { return h(ctx, string(task.Payload())) })
	if err := srv.Start(mux); err != nil {
		t.Fatalf("asynq.Server.Start: %v", err)
	}
	return srv.Shutdown
}

func TestMiddlewarePassesTheConsumerSuite(t *testing.T) {
	testutil.TestConsumer(t, func(t *testing.T) testutil.ConsumerQueue {
		addr := testenv.Redis(t)
		return &consumerQueue{addr: addr, name: uniqueQueue(t, addr)}
	}, testutil.ConsumerFeatures{Redelivers: true})
}
