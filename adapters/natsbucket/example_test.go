package natsbucket_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/pacer"
)

// Every worker process that runs this shares one limit of 100 jobs a
// second, held in the key-value bucket "pacer_fleet".
func Example() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "example_fleet"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = js.DeleteKeyValue(ctx, "example_fleet") }()
	fleet, err := natsbucket.New(kv, natsbucket.Config{Key: "sms-provider", Rate: 100})
	if err != nil {
		log.Fatal(err)
	}
	defer fleet.Close()
	p, err := pacer.New(pacer.Config{Rate: 100, Limiter: fleet})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for range 3 {
		pm, err := p.Acquire(ctx, 1)
		if err != nil {
			log.Fatal(err)
		}
		pm.Done(nil) // the job's outcome
	}
	fmt.Println(fleet.Stats().Mode, fleet.Stats().Dispatched)
	// Output: nats 3
}
