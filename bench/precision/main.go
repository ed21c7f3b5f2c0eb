// Command precision drives one backlogged caller through pacer's
// TokenBucket, x/time/rate (burst 1) and go.uber.org/ratelimit at several
// rates, in one run, and prints achieved/target for each: how close a
// caller that always wants more gets to the rate it was promised.
//
//	go run ./bench/precision [-d 2s] [-rates 100,1000,10000,100000,1000000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/ratelimit"
	"golang.org/x/time/rate"

	"github.com/jobpacer/pacer/pacer"
)

func main() {
	d := flag.Duration("d", 2*time.Second, "how long to drive each limiter at each rate")
	rates := flag.String("rates", "100,1000,10000,100000,1000000", "comma-separated rates, per second")
	flag.Parse()
	var rs []float64
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r < 1 || r > pacer.MaxRate {
			fmt.Fprintf(os.Stderr, "precision: -rates: %q: want a rate in [1, %g] per second (uber ratelimit takes whole numbers)\n", s, float64(pacer.MaxRate))
			os.Exit(2)
		}
		rs = append(rs, r)
	}
	ctx := context.Background()
	fmt.Printf("%10s  %8s  %12s  %15s  %12s\n", "rate/s", "pacer", "x/time/rate", "uber ratelimit", "pacer÷x/rate")
	for _, r := range rs {
		tb, err := pacer.NewTokenBucket(r, 1, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		p := drive(*d, r, func() { _ = tb.Acquire(ctx, 1) })
		xl := rate.NewLimiter(rate.Limit(r), 1)
		x := drive(*d, r, func() { _ = xl.Wait(ctx) })
		ul := ratelimit.New(int(r))
		u := drive(*d, r, func() { ul.Take() })
		fmt.Printf("%10.0f  %8.4f  %12.4f  %15.4f  %11.1f×\n", r, p, x, u, p/x)
	}
}

// drive calls take in a loop for d and returns calls ÷ (r × elapsed).
func drive(d time.Duration, r float64, take func()) float64 {
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		take()
		n++
	}
	return float64(n) / (r * time.Since(start).Seconds())
}
