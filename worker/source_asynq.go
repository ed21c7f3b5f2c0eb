package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
)

// AsynqConfig is the [worker.source] table of kind "asynq".
type AsynqConfig struct {
	// Queue is the Asynq queue to take tasks from. The default value is
	// "default".
	Queue string `toml:"queue"`
	// Concurrency is how many tasks the Asynq server holds at once
	// (waiting for the pace or running). The default value is the
	// worker's max_in_flight, or 10 without one.
	Concurrency int `toml:"concurrency"`
	// TaskType is the type of the tasks that the demo producer and pacer
	// enqueue put in. The default value is "job".
	TaskType string `toml:"task_type"`
	// MaxRetry is the retry budget of tasks that the demo producer and
	// pacer enqueue put in. The default value is 25 (Asynq's).
	MaxRetry int `toml:"max_retry"`
}

func init() {
	RegisterSource("asynq", func(o Options) (Source, error) {
		var c AsynqConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		if c.Queue == "" {
			c.Queue = "default"
		}
		if c.TaskType == "" {
			c.TaskType = "job"
		}
		if c.Concurrency < 0 {
			return nil, o.Errorf("concurrency", "%d: want tasks ≥ 0 (0: max_in_flight, or 10)", c.Concurrency)
		}
		if c.MaxRetry < 0 {
			return nil, o.Errorf("max_retry", "%d: want ≥ 0", c.MaxRetry)
		}
		if c.MaxRetry == 0 {
			c.MaxRetry = 25
		}
		return &asynqSource{cfg: c}, nil
	})
}

type asynqSource struct {
	cfg    AsynqConfig
	opt    asynq.RedisClientOpt
	rdb    *redis.Client
	client *asynq.Client
}

func (s *asynqSource) Connect(ctx context.Context, b *Brokers) (pacer.Probe, error) {
	opt, err := b.Redis()
	if err != nil {
		return nil, err
	}
	s.opt = opt
	s.rdb = redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("worker: asynq source: redis %s: %w", opt.Addr, err)
	}
	s.client = asynq.NewClient(opt)
	return pacer.ProbeFunc(s.backlog), nil
}

// backlog reads the queue's pending list and the age of its oldest task:
// two cheap reads, where Inspector.GetQueueInfo also runs MEMORY USAGE.
func (s *asynqSource) backlog(ctx context.Context) (pacer.Backlog, error) {
	prefix := "asynq:{" + s.cfg.Queue + "}:"
	n, err := s.rdb.LLen(ctx, prefix+"pending").Result()
	if err != nil {
		return pacer.Backlog{}, err
	}
	b := pacer.Backlog{Pending: n}
	if n > 0 {
		ids, err := s.rdb.LRange(ctx, prefix+"pending", -1, -1).Result()
		if err == nil && len(ids) == 1 {
			since, err := s.rdb.HGet(ctx, prefix+"t:"+ids[0], "pending_since").Result()
			if ns, perr := strconv.ParseInt(since, 10, 64); err == nil && perr == nil && ns > 0 {
				b.OldestAge = max(time.Since(time.Unix(0, ns)), 0)
			}
		}
	}
	return b, nil
}

func (s *asynqSource) Produce(ctx context.Context, payload []byte) error {
	_, err := s.client.EnqueueContext(ctx, asynq.NewTask(s.cfg.TaskType, payload),
		asynq.Queue(s.cfg.Queue), asynq.MaxRetry(s.cfg.MaxRetry))
	return err
}

// notAdmitted is returned by the handler when the pacer did not admit
// the task (stopping): the task goes back, not counted as a failure.
type notAdmitted struct{ err error }

func (e *notAdmitted) Error() string { return "worker: not admitted: " + e.err.Error() }
func (e *notAdmitted) Unwrap() error { return e.err }

func (s *asynqSource) Run(ctx context.Context, env Env) error {
	defer s.rdb.Close()
	defer s.client.Close()
	conc := s.cfg.Concurrency
	if conc == 0 {
		conc = env.MaxInFlight
	}
	if conc == 0 {
		conc = 10
	}
	// stop ends waits for the pace when the drain begins: those tasks go
	// back to the queue at once; running ones finish.
	stopCtx, stop := context.WithCancel(context.Background())
	defer stop()
	srv := asynq.NewServer(s.opt, asynq.Config{
		Concurrency: conc, Queues: map[string]int{s.cfg.Queue: 1},
		ShutdownTimeout: env.DrainTimeout, DelayedTaskCheckInterval: time.Second,
		IsFailure: func(err error) bool {
			var na *notAdmitted
			_, throttled := pacer.IsThrottled(err)
			return !throttled && !errors.As(err, &na)
		},
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			var na *notAdmitted
			if errors.As(err, &na) {
				return 0
			}
			if d, ok := pacer.IsThrottled(err); ok {
				return max(d, time.Second)
			}
			return asynq.DefaultRetryDelayFunc(n, err, t)
		},
		Logger: asynqLogger{env.Log}, LogLevel: asynq.WarnLevel,
	})
	h := asynq.HandlerFunc(func(tctx context.Context, t *asynq.Task) error {
		actx, cancel := context.WithCancel(tctx)
		defer cancel()
		go func() {
			select {
			case <-stopCtx.Done():
				cancel()
			case <-actx.Done():
			}
		}()
		pm, err := env.Pacer.Acquire(actx, 1)
		if err != nil {
			return &notAdmitted{err}
		}
		id, _ := asynq.GetTaskID(tctx)
		n, _ := asynq.GetRetryCount(tctx)
		out := env.Handle(sink.Job{ID: id, Type: t.Type(), Attempt: n + 1, Payload: t.Payload(), Worker: env.Worker})
		pm.Done(out)
		if errors.Is(out, sink.ErrPermanent) {
			return fmt.Errorf("%w: %w", out, asynq.SkipRetry)
		}
		return out
	})
	if err := srv.Start(h); err != nil {
		return fmt.Errorf("worker: asynq source: %w", err)
	}
	<-ctx.Done()
	stop()
	srv.Shutdown() // waits up to DrainTimeout; unfinished tasks go back to the queue
	return nil
}

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "from", "asynq") }
