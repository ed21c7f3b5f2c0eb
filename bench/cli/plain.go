package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// plain runs a plain program until SIGTERM.
func plain() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	c := client()
	lim := rate.NewLimiter(rate.Inf, 1)
	if *flagLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(*flagLimit), 1)
	}
	switch *flagMode {
	case "plain-asynq":
		srv := asynq.NewServer(asynq.RedisClientOpt{Addr: *flagRedis}, asynq.Config{
			Concurrency: *flagConc, Queues: map[string]int{*flagQueue: 1}, LogLevel: asynq.WarnLevel,
		})
		err := srv.Start(asynq.HandlerFunc(func(tctx context.Context, t *asynq.Task) error {
			if err := lim.Wait(tctx); err != nil {
				return err
			}
			id, _ := asynq.GetTaskID(tctx)
			return post(tctx, c, *flagURL, id, t.Type(), t.Payload())
		}))
		if err != nil {
			log.Fatal(err)
		}
		<-ctx.Done()
		srv.Shutdown()
	case "plain-jetstream":
		nc, err := nats.Connect(*flagNATS)
		if err != nil {
			log.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			log.Fatal(err)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, *flagQueue, jetstream.ConsumerConfig{Durable: "plain", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			log.Fatal(err)
		}
		msgs := make(chan jetstream.Msg)
		var wg sync.WaitGroup
		for range *flagConc {
			wg.Go(func() {
				for m := range msgs {
					if lim.Wait(ctx) != nil {
						_ = m.Nak()
						continue
					}
					md, _ := m.Metadata()
					id := ""
					if md != nil {
						id = strconv.FormatUint(md.Sequence.Stream, 10)
					}
					if post(ctx, c, *flagURL, id, m.Subject(), m.Data()) != nil {
						_ = m.Nak()
						continue
					}
					_ = m.Ack()
				}
			})
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { msgs <- m })
		if err != nil {
			log.Fatal(err)
		}
		<-ctx.Done()
		cc.Drain()
		<-cc.Closed()
		close(msgs)
		wg.Wait()
	default:
		log.Fatalf("-mode %q: want plain-asynq or plain-jetstream", *flagMode)
	}
}
