package redisbucket_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/pacer"
	"github.com/redis/go-redis/v9"
)

// Every worker process of a fleet builds its Pacer like this; all those
// whose Bucket has the Key "sms-provider" share 100 jobs per second between
// them, however many there are. If Redis cannot be reached, each runs at
// its share (100 ÷ 4 here) until it can.
func Example() {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer rdb.Close()

	fleet, err := redisbucket.New(rdb, redisbucket.Config{
		Key:             "sms-provider",
		Rate:            100, // jobs per second for the whole fleet
		ExpectedWorkers: 4,   // the share each takes if Redis goes away
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fleet.Close() // gives unused leased tokens back

	p, err := pacer.New(pacer.Config{Rate: 50, Limiter: fleet}) // this worker: ≤ 50/s, and the fleet's limit
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	ctx := context.Background()
	for range 5 {
		pm, err := p.Acquire(ctx, 1)
		if err != nil {
			fmt.Println(err)
			return
		}
		// … send the SMS …
		pm.Done(nil)
	}
	fmt.Println("dispatched", p.Stats().Dispatched, "jobs")
	// Output: dispatched 5 jobs
}
