package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/pacer"
)

// AsynqConfig is the [worker.source] table of kind "asynq".
type AsynqConfig struct {
	// Queue is the Asynq queue to take tasks from. The default value is
	// "default".
	Queue string `toml:"queue"`
	// Concurrency is how many tasks the Asynq server holds at once
	// (waiting for the pace or running). The default value is the
	// worker's max_in_flight, or without one asynqpacer.ServerConcurrency of the
	// pacer's rate at start (50ms of work at the rate, 10 to 1000).
	Concurrency int `toml:"concurrency"`
	// TaskType is the type of the tasks that the demo producer and pacer
	// enqueue put in. The default value is "job".
	TaskType string `toml:"task_type"`
	// MaxRetry is the retry budget of tasks that the demo producer and
	// pacer enqueue put in. The default value is 25 (Asynq's).
	MaxRetry int `toml:"max_retry"`
}

// Defaults of AsynqConfig, which pacer enqueue uses too.
const (
	DefaultQueue    = "default"
	DefaultTaskType = "job"
	DefaultMaxRetry = 25 // Asynq's
)

func init() {
	plugin.RegisterSource("asynq", func(o plugin.Options) (plugin.Source, error) {
		var c AsynqConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		if c.Queue == "" {
			c.Queue = DefaultQueue
		}
		if c.TaskType == "" {
			c.TaskType = DefaultTaskType
		}
		if c.Concurrency < 0 || c.Concurrency > pacer.InFlightLimit {
			return nil, o.Errorf("concurrency", "%d: want tasks in [0, %d] (0: max_in_flight, or 50ms of work at the rate)", c.Concurrency, pacer.InFlightLimit)
		}
		if c.MaxRetry < 0 {
			return nil, o.Errorf("max_retry", "%d: want ≥ 0", c.MaxRetry)
		}
		if c.MaxRetry == 0 {
			c.MaxRetry = DefaultMaxRetry
		}
		return &asynqSource{cfg: c}, nil
	})
}

type asynqSource struct {
	cfg     AsynqConfig
	brokers *brokers.Brokers // set by UseBrokers
	opt     asynq.RedisConnOpt
	probe   *asynqpacer.Probe
	client  *asynq.Client
}

func (s *asynqSource) UseBrokers(b *brokers.Brokers) { s.brokers = b }

func (s *asynqSource) Connect(ctx context.Context) (pacer.Probe, error) {
	b := s.brokers
	opt, err := b.Redis()
	if err != nil {
		return nil, err
	}
	s.opt = opt
	rdb, err := b.RedisClient(nil)
	if err != nil {
		return nil, err
	}
	err = rdb.Ping(ctx).Err()
	rdb.Close()
	if err != nil {
		return nil, fmt.Errorf("asynq source: %s: %w", b.RedisAt(), err)
	}
	// The probe reads the pending list and the oldest task's age: a light
	// read, where Inspector.GetQueueInfo also runs MEMORY USAGE.
	if s.probe, err = asynqpacer.NewProbe(opt, s.cfg.Queue); err != nil {
		return nil, fmt.Errorf("asynq source: %w", err)
	}
	s.client = asynq.NewClient(opt)
	return &notYetQueue{probe: s.probe, log: b.Log(), queue: s.cfg.Queue}, nil
}

// notYetQueue is the backlog probe of an Asynq source: a queue that is not
// in asynq:queues yet (Asynq adds it at the first task enqueued to it) is
// an empty queue, not a failed read: the backlog is 0, said once in a
// debug line, and again if the queue is deleted later.
type notYetQueue struct {
	probe *asynqpacer.Probe
	log   *slog.Logger
	queue string

	mu     sync.Mutex // guards absent
	absent bool       // the last read found no queue
}

func (q *notYetQueue) Backlog(ctx context.Context) (pacer.Backlog, error) {
	b, err := q.probe.Backlog(ctx)
	missing := errors.Is(err, asynqpacer.ErrQueueNotFound)
	q.mu.Lock()
	defer q.mu.Unlock()
	if missing && !q.absent {
		q.log.Debug("asynq queue not created yet (no task was ever enqueued to it): backlog 0", "queue", q.queue, "err", err.Error())
	}
	q.absent = missing
	if missing {
		return pacer.Backlog{}, nil
	}
	return b, err
}

func (s *asynqSource) Produce(ctx context.Context, payload []byte) error {
	_, err := s.client.EnqueueContext(ctx, asynq.NewTask(s.cfg.TaskType, payload),
		asynq.Queue(s.cfg.Queue), asynq.MaxRetry(s.cfg.MaxRetry))
	return err
}

// Run serves the queue with an Asynq server whose handler is gated by
// asynqpacer.Middleware. On stop, Asynq stops dequeuing; the tasks it
// holds run at the pace for up to the drain timeout, and the rest go back
// to the queue.
func (s *asynqSource) Run(ctx context.Context, env plugin.Env) error {
	defer s.probe.Close()
	defer s.client.Close()
	conc := s.cfg.Concurrency
	if conc == 0 {
		conc = env.MaxInFlight
	}
	if conc == 0 {
		conc = asynqpacer.ServerConcurrency(env.Pacer.Stats().Ceiling, 0)
	}
	srv := asynq.NewServer(s.opt, asynq.Config{
		Concurrency: conc, Queues: map[string]int{s.cfg.Queue: 1},
		ShutdownTimeout: env.DrainTimeout, DelayedTaskCheckInterval: time.Second,
		IsFailure: asynqpacer.IsFailure, RetryDelayFunc: retryDelay,
		Logger: asynqLogger{env.Log}, LogLevel: asynq.WarnLevel,
	})
	// A rate-limited task with no retries left goes back to the queue as
	// a copy: Asynq would archive it.
	rq := asynqpacer.NewRequeuer(s.opt)
	defer rq.Close()
	paced, err := asynqpacer.Middleware(env.Pacer, asynqpacer.Requeue(rq))
	if err != nil {
		return err
	}
	h := paced(asynq.HandlerFunc(func(tctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(tctx)
		n, _ := asynq.GetRetryCount(tctx)
		if first := t.Headers()[asynqpacer.HeaderOriginalID]; first != "" {
			id = first // a copy requeued after a rate limit: the same job
			before, _ := strconv.Atoi(t.Headers()[asynqpacer.HeaderRetried])
			n += before
		}
		out := env.Handle(sink.Job{ID: id, Type: t.Type(), Attempt: n + 1, Payload: t.Payload(), Worker: env.Worker})
		if out != nil && ctx.Err() != nil && !errors.Is(out, sink.ErrPermanent) {
			// Draining: a job that failed now (its command killed at the
			// drain timeout, most likely) is not a failed attempt. Wait
			// for Asynq to give up on it at its ShutdownTimeout: it then
			// puts the task back to pending as not done, and ends tctx.
			<-tctx.Done()
			return tctx.Err()
		}
		if errors.Is(out, sink.ErrPermanent) {
			return fmt.Errorf("%w: %w", out, asynq.SkipRetry)
		}
		return out
	}))
	if err := srv.Start(h); err != nil {
		return fmt.Errorf("asynq source: %w", err)
	}
	<-ctx.Done()
	srv.Shutdown() // waits up to DrainTimeout; unfinished tasks go back to the queue
	return nil
}

// retryDelay is asynqpacer.RetryDelay, but a task recovered from a worker
// that died (its lease expired, which takes Asynq one to two minutes to
// see) runs again at once: it did not fail, and it waited long enough.
// Asynq's default would add 15-45 s more.
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if errors.Is(err, asynq.ErrLeaseExpired) {
		return 0
	}
	return asynqpacer.RetryDelay(n, err, t)
}

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "from", "asynq") }
