// Package asynqpacer plugs the pacer core into Asynq (github.com/hibiken/asynq)
// workers.
//
// Asynq's dequeue loop is not pluggable, so the pace is kept where Asynq
// lets code in: Middleware wraps the handler, asks the Pacer for a permit
// before the handler runs and reports the handler's outcome after it. While
// a handler waits, Asynq's heartbeat keeps extending the task's lease (every
// 5 s, by 30 s), so a waiting task stays leased to its worker; a wait that
// cannot end before the task's deadline returns a *RateLimitError instead of
// running into it.
//
// A handler whose downstream pushes back returns pacer.Throttle(retryAfter,
// err) (or an error wrapping a *pacer.Throttled, or one pacer.Unavailable
// recognises): the Pacer lowers its pace to just under the good rate (and
// pauses the whole queue for a long retry-after or a storm), and Asynq
// retries the task after retryAfter. Set IsFailure and RetryDelay in asynq.Config so that such
// tasks are neither counted as failed nor retried early:
//
//	srv := asynq.NewServer(redisOpt, asynq.Config{
//		Concurrency:    asynqpacer.ServerConcurrency(200, 0), // tasks leased at once: 50ms of work at 200/s, at least 10
//		IsFailure:      asynqpacer.IsFailure,
//		RetryDelayFunc: asynqpacer.RetryDelay,
//	})
//	paced, err := asynqpacer.Middleware(p) // err names a bad argument
//	if err != nil {
//		return err
//	}
//	mux := asynq.NewServeMux()
//	mux.Use(paced)
//	mux.HandleFunc("email:send", sendEmail)
//	go p.Run(ctx) // the controller
//	err := srv.Run(mux)
//
// Asynq archives a task whose retries are spent on its first error of any
// kind, a rate limit included (it checks the retry count before
// IsFailure). The Requeue option, with a Requeuer on the same Redis, puts
// such a task back into its queue as a copy instead, so that waiting or
// throttling never archives a job:
//
//	rq := asynqpacer.NewRequeuer(redisOpt)
//	defer rq.Close()
//	paced, err := asynqpacer.Middleware(p, asynqpacer.Requeue(rq))
//
// A task waiting for its permit holds one of Asynq's Concurrency slots;
// ServerConcurrency sizes them for a rate (Asynq's own default, the CPU count,
// is too few for a pace of more than a few hundred tasks a second).
//
// NewProbe makes a pacer.Probe that reads the pending count and the age
// of the oldest pending task of one or more queues straight from Asynq's
// Redis keys, a much lighter read than Inspector.GetQueueInfo.
package asynqpacer
