package asynqpacer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// HeaderOriginalID is the task header that a requeued copy carries: the ID
// of the first task of the chain, so that a handler can keep one identity
// (an idempotency key, say) across copies.
const HeaderOriginalID = "pacer-original-id"

// HeaderRetried is the task header that a requeued copy carries: the
// retries the tasks of its chain before it used, so that a handler can
// count attempts across copies (the copy's own retry count starts at 0).
const HeaderRetried = "pacer-retried"

// requeueMargin is how long before the task's deadline a wait for a
// permit gives up when the task would be requeued (at most a quarter of
// the time left): the copy must be enqueued and the original revoked
// before Asynq gives up on the task (past its deadline Asynq archives a
// task whose retries are spent).
const requeueMargin = time.Second

// Requeuer puts a rate-limited task whose retry budget is spent back into
// its queue as a copy, instead of letting Asynq archive it. Asynq v0.26
// checks a task's retry count before Config.IsFailure: a task enqueued
// with MaxRetry(0), or one whose retries went on real failures, is
// archived on its first error of any kind, a rate limit included, so the
// downstream never sees it. With a Requeuer (the Requeue option),
// Middleware answers such a task's rate-limited outcome (its own
// *RateLimitError, or the handler's *pacer.Throttled) by enqueueing a copy
// — same type, payload, headers, queue, Timeout, Deadline and Retention,
// no retries left (as the original), processed after the retry-after —
// and then revoking the original (asynq.RevokeTask), so the task is never
// archived for waiting or throttling. The copy has a new task ID; its
// HeaderOriginalID header names the first and HeaderRetried counts the
// retries used before it. If the original's options cannot be read or the
// copy cannot be enqueued (Redis is down), the original's error goes back
// to Asynq unchanged, which archives it. A wait for a permit gives up a
// second (at most a quarter of the time left) before the task's deadline
// when it would be requeued, so that the copy is made before Asynq gives
// up on the task.
//
// What is not carried over: the original's task ID (a producer that
// enqueues with asynq.TaskID can enqueue the same ID again while the copy
// waits), asynq.Unique (revoking the original releases its lock) and an
// aggregation group. If the process dies between the enqueue and the
// revoke, the job runs once, as the copy, and Asynq's recoverer archives
// the original (its retries are spent) beside it. A Requeuer is safe for
// concurrent use.
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
	if ctx.Err() != nil {
		return nil // Asynq gave up on the task already: it decides
	}
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	// The original's Timeout, Deadline and Retention, which the handler's
	// context does not tell apart. (Inspector takes no context: the read
	// is bounded by the connection's own timeouts.)
	info, err := r.insp.GetTaskInfo(queue, id)
	if err != nil {
		return nil
	}
	// No retries left, as the original: a real failure of the copy is
	// archived, as the original's would have been.
	opts := []asynq.Option{asynq.Queue(queue), asynq.MaxRetry(max(0, maxRetry-retried)), asynq.ProcessIn(d)}
	if info.Timeout > 0 {
		opts = append(opts, asynq.Timeout(info.Timeout))
	}
	if !info.Deadline.IsZero() {
		opts = append(opts, asynq.Deadline(info.Deadline))
	}
	if info.Retention > 0 {
		opts = append(opts, asynq.Retention(info.Retention))
	}
	headers := make(map[string]string, len(t.Headers())+2)
	for k, v := range t.Headers() {
		headers[k] = v
	}
	if headers[HeaderOriginalID] == "" {
		headers[HeaderOriginalID] = id
	}
	before, _ := strconv.Atoi(headers[HeaderRetried])
	headers[HeaderRetried] = strconv.Itoa(before + retried)
	// Bounded by the task's deadline, past which Asynq gives up on the
	// task whatever is done here.
	end := time.Now().Add(requeueMargin)
	if dl, ok := ctx.Deadline(); ok {
		end = dl
	}
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), end)
	defer cancel()
	enq, err := r.client.EnqueueContext(rctx, asynq.NewTaskWithHeaders(t.Type(), t.Payload(), headers), opts...)
	if err != nil {
		return nil
	}
	return fmt.Errorf("asynqpacer: task %s rate limited with its retries spent: requeued as %s in %v: %w: %w", id, enq.ID, d, asynq.RevokeTask, cause)
}
