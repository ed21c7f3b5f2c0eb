package asynqpacer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// HeaderOriginalID is the task header that a requeued copy carries: the ID
// of the first task of the chain, so that a handler can keep one identity
// (an idempotency key, say) across copies.
const HeaderOriginalID = "pacer-original-id"

// Requeuer puts a rate-limited task whose retry budget is spent back into
// its queue as a copy, instead of letting Asynq archive it. Asynq v0.26
// checks a task's retry count before Config.IsFailure: a task enqueued
// with MaxRetry(0), or one whose retries went on real failures, is
// archived on its first error of any kind, a rate limit included, so the
// downstream never sees it. With a Requeuer (the Requeue option),
// Middleware answers such a task's rate-limited outcome (its own
// *RateLimitError, or the handler's *pacer.Throttled) by enqueueing a copy
// — same type, payload, headers, queue, MaxRetry, Timeout, Deadline and
// Retention, processed after the retry-after — and then revoking the
// original (asynq.RevokeTask), so the task is never archived for waiting
// or throttling. The copy has a new task ID; its HeaderOriginalID header
// names the first. If the copy cannot be enqueued (Redis is down), the
// original's error goes back to Asynq unchanged, which archives it.
// A crash between the enqueue and the revoke runs the task twice (at
// least once, never lost).
//
// A task in an aggregation group is copied without its group. A Requeuer
// is safe for concurrent use.
type Requeuer struct {
	client *asynq.Client
	insp   *asynq.Inspector
}

// NewRequeuer returns a Requeuer on the Redis that opt connects to: the
// one the Asynq server reads. Close it after the server has shut down.
func NewRequeuer(opt asynq.RedisConnOpt) *Requeuer {
	return &Requeuer{client: asynq.NewClient(opt), insp: asynq.NewInspector(opt)}
}

// Close closes the Requeuer's connections.
func (r *Requeuer) Close() error {
	return errors.Join(r.client.Close(), r.insp.Close())
}

// Requeue makes Middleware put a rate-limited task whose retry budget is
// spent back into its queue with r, as Requeuer describes. The default
// value, nil, leaves such a task to Asynq, which archives it.
func Requeue(r *Requeuer) Option {
	return func(c *config) error {
		c.requeue = r
		return nil
	}
}

// budgetSpent reports whether Asynq would archive the task of ctx on any
// error: its retries are used up.
func budgetSpent(ctx context.Context) bool {
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= maxRetry
}

// requeue enqueues a copy of t to be processed after d and returns the
// error that revokes the original, or nil if the copy could not be made.
func (r *Requeuer) requeue(ctx context.Context, t *asynq.Task, d time.Duration, cause error) error {
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	opts := []asynq.Option{asynq.Queue(queue), asynq.MaxRetry(maxRetry), asynq.ProcessIn(d)}
	// The original's Timeout, Deadline and Retention, which the handler's
	// context does not tell apart. ctx may be ending: use a context of
	// its own, bounded.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if info, err := r.insp.GetTaskInfo(queue, id); err == nil {
		if info.Timeout > 0 {
			opts = append(opts, asynq.Timeout(info.Timeout))
		}
		if !info.Deadline.IsZero() {
			opts = append(opts, asynq.Deadline(info.Deadline))
		}
		if info.Retention > 0 {
			opts = append(opts, asynq.Retention(info.Retention))
		}
	}
	headers := make(map[string]string, len(t.Headers())+1)
	for k, v := range t.Headers() {
		headers[k] = v
	}
	if headers[HeaderOriginalID] == "" {
		headers[HeaderOriginalID] = id
	}
	info, err := r.client.EnqueueContext(rctx, asynq.NewTaskWithHeaders(t.Type(), t.Payload(), headers), opts...)
	if err != nil {
		return nil
	}
	return fmt.Errorf("asynqpacer: task %s rate limited with its retries spent: requeued as %s in %v: %w: %w", id, info.ID, d, asynq.RevokeTask, cause)
}
