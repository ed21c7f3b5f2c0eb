package asynqpacer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/pacer"
)

// minRetryAfter is the least retry-after of a *RateLimitError, so a task
// whose deadline leaves no room at all is not retried in a tight loop.
const minRetryAfter = 100 * time.Millisecond

// returnMargin is how long before the task's deadline (less HandlerTime)
// a wait gives up, so that its *RateLimitError reaches Asynq before the
// deadline does (Asynq counts a task whose context ends as failed).
const returnMargin = 20 * time.Millisecond

// Option configures Middleware and NewMiddleware.
type Option func(*config) error

type route struct {
	pattern string
	p       *pacer.Pacer
}

type config struct {
	p           *pacer.Pacer
	routes      []route // longest pattern first
	handlerTime time.Duration
	requeue     *Requeuer
}

func invalid(field string, v any, allowed string) error {
	return &pacer.FieldError{Pkg: "asynqpacer", Field: field, Value: v, Want: allowed}
}

// Route paces the tasks whose type matches pattern with p instead of the
// default pacer. Patterns match as asynq.ServeMux's do: a pattern equal to
// the type wins, else the longest pattern that is a prefix of the type
// ("email:" matches "email:welcome"). Each pacer needs its own Run.
func Route(pattern string, p *pacer.Pacer) Option {
	return func(c *config) error {
		if strings.TrimSpace(pattern) == "" {
			return invalid("Route pattern", fmt.Sprintf("%q", pattern), "a non-empty task type or type prefix")
		}
		if p == nil {
			return invalid(fmt.Sprintf("Route(%q) pacer", pattern), "nil", "a *pacer.Pacer made by pacer.New")
		}
		for _, r := range c.routes {
			if r.pattern == pattern {
				return invalid("Route pattern", fmt.Sprintf("%q", pattern), "a pattern not already routed")
			}
		}
		c.routes = append(c.routes, route{pattern, p})
		return nil
	}
}

// HandlerTime leaves d for the handler before the task's deadline: a task
// whose wait for a permit would end later than its deadline less d is
// given back to Asynq with a *RateLimitError instead of waiting. The
// default value is 0: the wait only has to end before the deadline.
func HandlerTime(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("HandlerTime", d, "≥ 0")
		}
		c.handlerTime = d
		return nil
	}
}

// Middleware returns an asynq.MiddlewareFunc that paces the handler it
// wraps with p (or, for task types matched by a Route option, with that
// route's pacer). For each task it waits in Acquire, then runs the handler
// and reports the handler's error to the permit's Done: nil is a success,
// an error that is or wraps a *pacer.Throttled is pushback (the pacer
// lowers its pace, and pauses on a long retry-after or a storm), anything
// else is a failure. It returns the handler's error unchanged, but for one
// that says the downstream is down or drowning (pacer.Unavailable: a
// refused connection, a timeout) while the task's context is still live,
// which is pushback too, and a *pacer.Throttled without a retry-after:
// both come back wrapped in a *pacer.Throttled carrying the pacer's
// Config.DefaultRetryAfter (Pacer.RetryAfter), so that IsFailure and
// RetryDelay retry the task after the delay the pacer itself waits,
// without counting a failure.
//
// The wait ends early, without running the handler, when
//   - it cannot end before the task's deadline (less the HandlerTime
//     option): the handler returns a *RateLimitError carrying the pacer's
//     estimated wait as retry-after, which IsFailure and RetryDelay let
//     Asynq retry without counting a failure;
//   - the pacer is closed: a *RateLimitError wrapping pacer.ErrClosed;
//   - the task's context ends (Asynq cancels it, or shuts down and puts the
//     task back to pending): ctx.Err().
//
// The middleware is safe for concurrent use, as Asynq's handlers run.
// Middleware returns an error for bad arguments, naming the argument: a
// nil p, or a bad Option (Route with an empty pattern, a nil pacer or a
// pattern given twice; a negative HandlerTime). Every such error wraps
// pacer.ErrInvalid.
func Middleware(p *pacer.Pacer, opts ...Option) (asynq.MiddlewareFunc, error) {
	if p == nil {
		return nil, invalid("pacer", "nil", "a *pacer.Pacer made by pacer.New")
	}
	c := &config{p: p}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(c.routes, func(i, j int) bool { return len(c.routes[i].pattern) > len(c.routes[j].pattern) })
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			return c.process(ctx, next, t)
		})
	}, nil
}

// pacerFor returns the pacer for task type typ.
func (c *config) pacerFor(typ string) *pacer.Pacer {
	for _, r := range c.routes {
		if r.pattern == typ {
			return r.p
		}
	}
	for _, r := range c.routes {
		if strings.HasPrefix(typ, r.pattern) {
			return r.p
		}
	}
	return c.p
}

// process runs t at the pace, and with a Requeuer puts it back into its
// queue instead of returning a rate-limited outcome that would have Asynq
// archive it.
func (c *config) process(ctx context.Context, next asynq.Handler, t *asynq.Task) error {
	err := c.paced(ctx, next, t)
	if c.requeue == nil || err == nil || !budgetSpent(ctx) {
		return err
	}
	d, limited := rateLimited(err)
	if !limited {
		return err
	}
	d = c.pacerFor(t.Type()).RetryAfter(d)
	if revoke := c.requeue.requeue(ctx, t, d, err); revoke != nil {
		return revoke
	}
	return err
}

func (c *config) paced(ctx context.Context, next asynq.Handler, t *asynq.Task) error {
	p := c.pacerFor(t.Type())
	wctx := ctx
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		margin := returnMargin
		if c.requeue != nil && budgetSpent(ctx) {
			// Leave the requeue its time: a second, or a quarter of what
			// is left for a task with a short timeout.
			margin = max(margin, min(requeueMargin, time.Until(deadline)/4))
		}
		latest := deadline.Add(-c.handlerTime - margin)
		if est := p.EstimateWait(1); time.Now().Add(est).After(latest) {
			return &RateLimitError{Type: t.Type(), RetryAfter: max(est, minRetryAfter)}
		}
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	pm, err := p.Acquire(wctx, 1)
	if err != nil {
		switch {
		case errors.Is(err, pacer.ErrClosed):
			return &RateLimitError{Type: t.Type(), RetryAfter: p.RetryAfter(0), Err: err}
		case ctx.Err() != nil:
			return ctx.Err()
		case hasDeadline && wctx.Err() != nil:
			return &RateLimitError{Type: t.Type(), RetryAfter: max(p.EstimateWait(1), minRetryAfter), Err: wctx.Err()}
		}
		return fmt.Errorf("asynqpacer: waiting for a permit for task %q: %w", t.Type(), err)
	}
	if err := ctx.Err(); err != nil {
		// Asynq gave up on the task while the permit was granted (it
		// put the task back to pending on shutdown): do not run it, and
		// give the permit back: the job neither ran nor failed.
		pm.Cancel()
		return err
	}
	finished := false
	defer func() {
		if !finished { // the handler panicked; Asynq recovers it
			pm.Done(fmt.Errorf("asynqpacer: handler for task %q panicked", t.Type()))
		}
	}()
	err = next.ProcessTask(ctx, t)
	finished = true
	if d, throttled := pacer.IsThrottled(err); throttled && d <= 0 {
		// No retry-after: the pacer's own default, so that RetryDelay
		// retries the task after what the pacer waits.
		err = pacer.Throttle(p.RetryAfter(0), err)
	} else if !throttled && ctx.Err() == nil && pacer.Unavailable(err) {
		err = pacer.Throttle(p.RetryAfter(0), err)
	}
	pm.Done(err)
	return err
}
