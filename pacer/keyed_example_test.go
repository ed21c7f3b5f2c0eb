package pacer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// A worker sends webhooks for many customers under one ceiling of 300
// jobs a second. Each customer is paced on its own: a 429 from one lowers
// that customer's pace only, and the customers with jobs waiting share
// the ceiling fairly. "acme" has a ceiling of its own and twice the
// share.
func ExampleKeyed() {
	kp, err := pacer.NewKeyed(pacer.KeyedConfig{
		Rate: 300,
		Keys: map[string]pacer.KeyLimits{"acme": {Rate: 50, Weight: 2}},
	})
	if err != nil {
		panic(err)
	}
	defer kp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = kp.Run(ctx) }() // forgets idle customers

	send := func(customer string) error {
		if customer == "slow-corp" {
			return pacer.Throttle(time.Second, errors.New("429 Too Many Requests"))
		}
		return nil
	}
	for _, customer := range []string{"acme", "globex", "slow-corp"} {
		pm, err := kp.Acquire(ctx, customer, 1)
		if err != nil {
			panic(err)
		}
		pm.Done(send(customer)) // a Throttled outcome cuts this customer's pace
	}
	for _, customer := range []string{"acme", "globex", "slow-corp"} {
		st, _ := kp.Key(customer)
		fmt.Printf("%s: ceiling %g, weight %g, limited by pushback %v\n", st.Key, st.Ceiling, st.Weight, st.Limited)
	}
	fmt.Println("keys held:", kp.Stats().Keys)
	// Output:
	// acme: ceiling 50, weight 2, limited by pushback false
	// globex: ceiling 300, weight 1, limited by pushback false
	// slow-corp: ceiling 300, weight 1, limited by pushback true
	// keys held: 3
}
