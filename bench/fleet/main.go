// Command fleet measures a limit shared by a fleet of worker processes
// through Redis: for 1, 2 and 4 processes at 1,000/s and 20,000/s it runs
// the processes backlogged against one limit and prints the rate achieved
// over the target and the Redis calls made per dispatched job, first with
// redisbucket's leases, then with one GCRA script call per job (the way
// go-redis/redis_rate is used: Allow, and on a denial sleep RetryAfter),
// and the ratio of calls.
//
//	go run ./bench/fleet                 # Redis at $REDIS_ADDR or 127.0.0.1:6379
//	go run ./bench/fleet -dur 5s -procs 4 -rates 20000
//
// Each process runs a pacer.Pacer whose Limiter is the shared limit, with
// -goroutines goroutines acquiring in a loop; the Pacer's own ceiling is
// off (-ceiling 1e9) so that the fleet limit alone paces. The rate is counted over -dur after a -warm warm-up, from a common
// start time; calls per job over the whole run.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/pacer"
	"github.com/redis/go-redis/v9"
)

const workerEnv = "PACER_BENCH_FLEET_WORKER"

type spec struct {
	Mode       string // "lease" or "perjob"
	Addr, Key  string
	Rate       float64
	Start      int64 // unix ns
	Warm, Dur  time.Duration
	Goroutines int
	LeaseTime  time.Duration
	Ceiling    float64
}

type result struct {
	Counted    int64 // dispatched within [Start+Warm, Start+Warm+Dur)
	Dispatched int64 // over the whole run
	Calls      uint64
	Late       time.Duration
	Stats      *redisbucket.Stats `json:",omitempty"`
}

func main() {
	if js := os.Getenv(workerEnv); js != "" {
		if err := worker(js); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	flag.StringVar(&addr, "redis", addr, "Redis address (default $REDIS_ADDR or 127.0.0.1:6379)")
	dur := flag.Duration("dur", 3*time.Second, "measured time of each leased run")
	pdur := flag.Duration("perjob-dur", 2*time.Second, "measured time of each per-job run")
	warm := flag.Duration("warm", 500*time.Millisecond, "warm-up before counting")
	procsFlag := flag.String("procs", "1,2,4", "process counts, comma-separated")
	ratesFlag := flag.String("rates", "1000,20000", "fleet rates in jobs/s, comma-separated")
	gor := flag.Int("goroutines", 4, "goroutines acquiring in each process")
	lease := flag.Duration("lease", redisbucket.DefaultLeaseTime, "redisbucket LeaseTime")
	ceiling := flag.Float64("ceiling", 1e9, "each process's own pacer ceiling, jobs/s (1e9: off, so the fleet limit alone paces)")
	flag.Parse()
	procs, err := ints(*procsFlag)
	check(err)
	rates, err := ints(*ratesFlag)
	check(err)

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	check(rdb.Ping(context.Background()).Err())
	info, _ := rdb.Info(context.Background(), "server").Result()
	rdb.Close()

	fmt.Printf("fleet limit shared through Redis %s at %s; %d goroutines per process, process ceiling %g/s, fleet burst 1\n",
		field(info, "redis_version"), addr, *gor, *ceiling)
	fmt.Printf("leases: redisbucket (LeaseTime %v), %v counted after %v; per job: a GCRA script call per job (redis_rate-style; denied calls count), %v counted\n\n",
		*lease, *dur, *warm, *pdur)
	fmt.Printf("%5s %9s │ %14s %10s │ %14s %10s │ %s\n", "procs", "target/s", "leases: ach/tgt", "calls/job", "per job: ach/tgt", "calls/job", "calls ratio")
	for _, r := range rates {
		for _, n := range procs {
			l := fleet(spec{Mode: "lease", Addr: addr, Rate: float64(r), Warm: *warm, Dur: *dur, Goroutines: *gor, LeaseTime: *lease, Ceiling: *ceiling}, n)
			p := fleet(spec{Mode: "perjob", Addr: addr, Rate: float64(r), Warm: *warm, Dur: *pdur, Goroutines: *gor, Ceiling: *ceiling}, n)
			ratio := "-"
			if l.perJob > 0 {
				ratio = fmt.Sprintf("%.0f×", p.perJob/l.perJob)
			}
			fmt.Printf("%5d %9s │ %15.4f %10.4f │ %16.4f %10.4f │ %s\n", n, thousands(r), l.ach, l.perJob, p.ach, p.perJob, ratio)
		}
	}
}

type summary struct{ ach, perJob float64 }

// fleet runs n worker processes of s and sums what they report.
func fleet(s spec, n int) summary {
	exe, err := os.Executable()
	check(err)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s.Key = "bench:fleet:" + s.Mode + ":" + hex.EncodeToString(rnd[:])
	s.Start = time.Now().Add(400 * time.Millisecond).UnixNano()
	js, _ := json.Marshal(s)
	outs := make([]bytes.Buffer, n)
	errs := make([]bytes.Buffer, n)
	cmds := make([]*exec.Cmd, n)
	// When one worker fails, the others are killed before the bench
	// exits, so that none keeps running (and taking from Redis) after it.
	type exit struct {
		i   int
		err error
	}
	exits := make(chan exit, n)
	started, pending := 0, 0 // processes started; of them, exits not yet received
	stopAll := func() {
		for _, c := range cmds[:started] {
			_ = c.Process.Kill() // an error: it has exited already
		}
		for ; pending > 0; pending-- {
			<-exits
		}
	}
	for i := range cmds {
		cmds[i] = exec.Command(exe)
		cmds[i].Env = append(os.Environ(), workerEnv+"="+string(js))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &errs[i]
		if err := cmds[i].Start(); err != nil {
			stopAll()
			check(fmt.Errorf("starting worker %d: %w", i, err))
		}
		started++
		pending++
		go func() { exits <- exit{i, cmds[i].Wait()} }()
	}
	for pending > 0 {
		e := <-exits
		pending--
		if e.err != nil {
			stopAll()
			fmt.Fprintf(os.Stderr, "worker %d: %v\n%s", e.i, e.err, errs[e.i].String())
			os.Exit(1)
		}
	}
	var counted, dispatched int64
	var calls uint64
	for i := range cmds {
		var r result
		check(json.Unmarshal(outs[i].Bytes(), &r))
		if r.Late > 0 {
			fmt.Fprintf(os.Stderr, "warning: worker %d started %v after the common start\n", i, r.Late)
		}
		if r.Stats != nil && (r.Stats.Fallbacks > 0 || r.Stats.Expired > 0) {
			fmt.Fprintf(os.Stderr, "note: %s worker %d: %d fallbacks, %d expired slots\n", s.Mode, i, r.Stats.Fallbacks, r.Stats.Expired)
		}
		counted += r.Counted
		dispatched += r.Dispatched
		calls += r.Calls
	}
	return summary{ach: float64(counted) / (s.Rate * s.Dur.Seconds()), perJob: float64(calls) / float64(max(dispatched, 1))}
}

func worker(js string) error {
	var s spec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true, PoolSize: s.Goroutines + 2})
	defer rdb.Close()
	var lim pacer.Limiter
	var calls func() uint64
	var bucket *redisbucket.Bucket
	switch s.Mode {
	case "lease":
		b, err := redisbucket.New(rdb, redisbucket.Config{Key: s.Key, Rate: s.Rate, LeaseTime: s.LeaseTime,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if err != nil {
			return err
		}
		bucket, lim = b, b
		calls = func() uint64 { return b.Stats().Calls }
	case "perjob":
		g := &gcra{rdb: rdb, key: s.Key, rate: s.Rate, burst: 1}
		lim = g
		calls = g.calls.Load
	default:
		return errors.New("unknown mode " + s.Mode)
	}
	p, err := pacer.New(pacer.Config{Rate: s.Ceiling, Limiter: lim})
	if err != nil {
		return err
	}
	start := time.Unix(0, s.Start)
	res := result{Late: -time.Until(start)}
	time.Sleep(time.Until(start))
	from, to := start.Add(s.Warm), start.Add(s.Warm+s.Dur)
	ctx, cancel := context.WithDeadline(context.Background(), to)
	defer cancel()
	var counted, dispatched atomic.Int64
	var wg sync.WaitGroup
	for range s.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pm, err := p.Acquire(ctx, 1)
				if err != nil {
					return
				}
				dispatched.Add(1)
				if now := time.Now(); !now.Before(from) && now.Before(to) {
					counted.Add(1)
				}
				pm.Done(nil)
			}
		}()
	}
	wg.Wait()
	res.Counted, res.Dispatched = counted.Load(), dispatched.Load()
	if bucket != nil {
		bucket.Close()
		st := bucket.Stats()
		res.Stats = &st
	}
	res.Calls = calls()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// gcra is the per-job baseline: go-redis/redis_rate's GCRA script (its
// allowN, ported), one call per Wait, sleeping the returned retry-after on
// a denial and asking again, as a redis_rate user does.
type gcra struct {
	rdb         *redis.Client
	key         string
	rate, burst float64
	calls       atomic.Uint64
}

var gcraScript = redis.NewScript(`
redis.replicate_commands()
local rate_limit_key = KEYS[1]
local burst = ARGV[1]
local rate = ARGV[2]
local period = ARGV[3]
local cost = tonumber(ARGV[4])
local emission_interval = period / rate
local increment = emission_interval * cost
local burst_offset = emission_interval * burst
local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)
local tat = redis.call("GET", rate_limit_key)
if not tat then tat = now else tat = tonumber(tat) end
tat = math.max(tat, now)
local new_tat = tat + increment
local allow_at = new_tat - burst_offset
local diff = now - allow_at
local remaining = diff / emission_interval
if remaining < 0 then
  return {0, 0, tostring(diff * -1), tostring(tat - now)}
end
local reset_after = new_tat - now
if reset_after > 0 then
  redis.call("SET", rate_limit_key, new_tat, "EX", math.ceil(reset_after))
end
return {cost, remaining, tostring(-1), tostring(reset_after)}
`)

func (g *gcra) Wait(ctx context.Context, n int) error {
	for {
		g.calls.Add(1)
		v, err := gcraScript.Run(ctx, g.rdb, []string{g.key}, g.burst, g.rate, 1, n).Slice()
		if err != nil {
			return err
		}
		if allowed, _ := v[0].(int64); allowed > 0 {
			return nil
		}
		s, _ := v[2].(string)
		retry, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		t := time.NewTimer(time.Duration(retry * float64(time.Second)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad list %q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func field(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
			return v
		}
	}
	return "?"
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}
