package natspacer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
)

// errTooManyRequests stands for a downstream's 429 answer.
var errTooManyRequests = errors.New("429 Too Many Requests")

// charge stands for the call each message makes to a rate-limited API.
func charge(ctx context.Context, order []byte) error { return nil }

// A billing service consumes the ORDERS stream at 50 orders/s, rising up to
// 200/s while the backlog is deep; a 429 from the payment API lowers the pace
// (its 2 s retry-after, under PauseAfter, pauses nothing) and the order
// comes back after the retry-after. (It needs a NATS server with JetStream
// at nats.DefaultURL, so go test compiles it without running it; the same
// flows run against real servers in the repository's internal/adaptertest.)
func Example() {
	nc, err := nats.Connect(nats.DefaultURL, nats.MaxReconnects(-1)) // reconnect forever: Consume carries on
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background()) // in production: signal.NotifyContext
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		log.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{
		Durable:   "billing",
		AckPolicy: jetstream.AckExplicitPolicy, // Consume acks each message itself
		AckWait:   30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 20 {
		if _, err := js.Publish(ctx, "orders.new", fmt.Appendf(nil, "order %d", i)); err != nil {
			log.Fatal(err)
		}
	}

	probe := natspacer.NewProbe(cons) // the backlog, read free from each message
	p, err := pacer.New(pacer.Config{Rate: 200, Base: 50, Probe: probe})
	if err != nil {
		log.Fatal(err)
	}
	go p.Run(ctx) // the controller: backlog and pushback move the pace

	var charged atomic.Int64
	twenty := make(chan struct{})
	c, err := natspacer.Consume(ctx, cons, p, natspacer.HandlerFunc(func(ctx context.Context, msg jetstream.Msg) error {
		err := charge(ctx, msg.Data())
		if errors.Is(err, errTooManyRequests) {
			return pacer.Throttle(2*time.Second, err) // nak with 2s delay; the pacer lowers its pace
		}
		if err == nil && charged.Add(1) == 20 {
			close(twenty)
		}
		return err // nil: ack; other errors: nak with backoff
	}), natspacer.WithProbe(probe), natspacer.Concurrency(8))
	if err != nil {
		log.Fatal(err)
	}

	<-twenty  // in production: <-ctx.Done()
	c.Drain() // graceful: no new fetches; what was received is handled
	if err := c.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("charged", charged.Load(), "orders")
}

// A paced core NATS subscription: at most 100 events/s reach the handler;
// what does not fit in the buffer is dropped, counted and logged.
func ExampleSubscribe() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	p, err := pacer.New(pacer.Config{Rate: 100})
	if err != nil {
		log.Fatal(err)
	}
	var seen atomic.Int64
	five := make(chan struct{})
	s, err := natspacer.Subscribe(context.Background(), nc, "events.>", "indexers", p,
		natspacer.MsgHandlerFunc(func(ctx context.Context, msg *nats.Msg) error {
			if seen.Add(1) == 5 {
				close(five)
			}
			return nil
		}), natspacer.Buffer(100))
	if err != nil {
		log.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		log.Fatal(err)
	}
	for i := range 5 {
		_ = nc.Publish("events.click", fmt.Appendf(nil, "%d", i))
	}
	<-five
	s.Stop()
	_ = s.Wait()
	st := s.Stats()
	fmt.Println("handled", st.Handled, "dropped", st.Dropped)
}
