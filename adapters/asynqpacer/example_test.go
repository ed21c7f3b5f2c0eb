package asynqpacer_test

import (
	"context"
	"errors"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/pacer"
)

// errTooManyRequests stands for a downstream's 429 answer.
var errTooManyRequests = errors.New("429 Too Many Requests")

// sendEmail is a handler whose downstream may push back.
func sendEmail(ctx context.Context, t *asynq.Task) error {
	var err error // ... call the email API with t.Payload() ...
	if errors.Is(err, errTooManyRequests) {
		// The pace drops (a 2s retry-after, under PauseAfter, pauses
		// nothing), and Asynq retries this task after 2s without counting
		// a failure.
		return pacer.Throttle(2*time.Second, err)
	}
	return err
}

// A worker for the "email" and "sms" queues: email paced at 50/s, rising
// up to 200/s while the email queue's backlog is deep; SMS at a flat 10/s.
func Example() {
	redisOpt := asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}

	probe, err := asynqpacer.NewProbe(redisOpt, "email")
	if err != nil {
		log.Fatal(err)
	}
	defer probe.Close()
	emailPacer, err := pacer.New(pacer.Config{Rate: 200, Base: 50, Probe: probe})
	if err != nil {
		log.Fatal(err)
	}
	smsPacer, err := pacer.New(pacer.Config{Rate: 10})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go emailPacer.Run(ctx) // the controller: backlog and pushback move the pace
	go smsPacer.Run(ctx)

	// A task with no retries left that is rate limited goes back into
	// its queue as a copy, instead of being archived by Asynq.
	requeuer := asynqpacer.NewRequeuer(redisOpt)
	defer requeuer.Close()
	paced, err := asynqpacer.Middleware(emailPacer, asynqpacer.Route("sms:", smsPacer), asynqpacer.Requeue(requeuer))
	if err != nil {
		log.Fatal(err)
	}
	mux := asynq.NewServeMux()
	mux.Use(paced)
	mux.HandleFunc("email:send", sendEmail)
	mux.HandleFunc("sms:send", func(context.Context, *asynq.Task) error { return nil })

	srv := asynq.NewServer(redisOpt, asynq.Config{
		Concurrency:    20,
		Queues:         map[string]int{"email": 2, "sms": 1},
		IsFailure:      asynqpacer.IsFailure,  // rate-limited is not failed
		RetryDelayFunc: asynqpacer.RetryDelay, // ... and comes back after its retry-after
	})
	if err := srv.Start(mux); err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
	srv.Shutdown() // tasks still waiting for the pacer go back to pending
}
