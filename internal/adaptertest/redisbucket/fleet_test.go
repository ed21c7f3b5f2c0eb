package redisbucket_test

// The fleet tests run real worker processes: the test binary re-executes
// itself with REDISBUCKET_TEST_WORKER set to a JSON workerSpec, and
// TestMain runs workerMain instead of the tests. Each worker runs a
// pacer.Pacer limited by a Bucket, keeps it backlogged from a common start
// time for a fixed duration, counts its dispatches in bins of wall-clock
// time and prints a workerResult as JSON.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

const workerEnv = "REDISBUCKET_TEST_WORKER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerEnv); spec != "" {
		os.Exit(workerMain(spec))
	}
	// A go-redis pool that failed to dial PoolSize times probes the
	// server from a goroutine of its own, which notices the pool's Close
	// only after its next 1s sleep (the fallback tests make it fail).
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

type workerSpec struct {
	Addr     string
	Key      string
	Rate     float64
	Expected int
	Retry    time.Duration
	Timeout  time.Duration
	Start    int64 // unix ns, wall clock
	Dur      time.Duration
	Bin      time.Duration
	Skew     time.Duration // added to the clock injected into the Bucket and the Pacer
}

type workerResult struct {
	Ready time.Duration // time from ready to start; < 0 means it was late
	Bins  []int64       // dispatches per bin of wall-clock time from Start
	Modes []string      // the bucket's mode at the end of each bin
	Stats redisbucket.Stats
}

// skewClock is the system clock shifted by d: a worker whose clock is off.
type skewClock struct{ d time.Duration }

func (c skewClock) Now() time.Time                       { return time.Now().Add(c.d) }
func (c skewClock) NewTimer(d time.Duration) pacer.Timer { return pacer.SystemClock().NewTimer(d) }

func workerMain(js string) int {
	var s workerSpec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		fmt.Fprintln(os.Stderr, "worker spec:", err)
		return 2
	}
	var clock pacer.Clock = pacer.SystemClock()
	if s.Skew != 0 {
		clock = skewClock{s.Skew}
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	b, err := redisbucket.New(rdb, redisbucket.Config{
		Key: s.Key, Rate: s.Rate, ExpectedWorkers: s.Expected,
		RetryInterval: s.Retry, Timeout: s.Timeout,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), Clock: clock,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p, err := pacer.New(pacer.Config{Rate: s.Rate, Limiter: b, Clock: clock})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	start := time.Unix(0, s.Start)
	res := workerResult{Ready: time.Until(start)}
	time.Sleep(time.Until(start))
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(s.Dur))
	defer cancel()
	nb := int(s.Dur / s.Bin)
	bins := make([]atomic.Int64, nb)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pm, err := p.Acquire(ctx, 1)
				if err != nil {
					return
				}
				if i := int(time.Since(start) / s.Bin); i >= 0 && i < nb {
					bins[i].Add(1)
				}
				pm.Done(nil)
			}
		}()
	}
	for i := 1; i <= nb; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * s.Bin)))
		res.Modes = append(res.Modes, b.Stats().Mode.String())
	}
	wg.Wait()
	res.Stats = b.Stats()
	b.Close()
	for i := range bins {
		res.Bins = append(res.Bins, bins[i].Load())
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// runFleet runs one worker process per spec, all starting lead from now;
// during, if set, runs in the test meanwhile with the common start time.
func runFleet(t *testing.T, specs []workerSpec, during func(start time.Time)) []workerResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(2 * time.Second) // a -race binary takes a while to start on a busy machine
	type proc struct {
		cmd            *exec.Cmd
		stdout, stderr bytes.Buffer
	}
	procs := make([]*proc, len(specs))
	for i, s := range specs {
		s.Start = start.UnixNano()
		js, _ := json.Marshal(s)
		p := &proc{cmd: exec.Command(exe, "-test.run=^$")}
		p.cmd.Env = append(os.Environ(), workerEnv+"="+string(js))
		p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("starting worker %d: %v", i, err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill() })
		procs[i] = p
	}
	if during != nil {
		during(start)
	}
	res := make([]workerResult, len(specs))
	for i, p := range procs {
		err := p.cmd.Wait()
		if s := strings.TrimSpace(p.stderr.String()); s != "" {
			t.Logf("worker %d log:\n%s", i, s)
		}
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
		if err := json.Unmarshal(p.stdout.Bytes(), &res[i]); err != nil {
			t.Fatalf("worker %d output %q: %v", i, p.stdout.String(), err)
		}
		if res[i].Ready < 0 {
			t.Fatalf("worker %d was ready %v after the common start; the machine is too busy for this test", i, -res[i].Ready)
		}
	}
	return res
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// fleetBins adds the workers' bins.
func fleetBins(res []workerResult) []int64 {
	out := make([]int64, len(res[0].Bins))
	for _, r := range res {
		for i, x := range r.Bins {
			out[i] += x
		}
	}
	return out
}

func TestFleetSharesOneLimit(t *testing.T) {
	addr := testenv.Redis(t)
	const (
		workers = 4
		rate    = 400.0
		dur     = 5 * time.Second
	)
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"four workers with synchronised clocks", 0},
		{"one worker's clock 2s ahead", 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testenv.UniqueName(t)
			specs := make([]workerSpec, workers)
			for i := range specs {
				specs[i] = workerSpec{Addr: addr, Key: key, Rate: rate, Dur: dur, Bin: 100 * time.Millisecond}
			}
			specs[1].Skew = tc.skew
			res := runFleet(t, specs, nil)
			var total int64
			var calls uint64
			counts := make([]int64, workers)
			for i, r := range res {
				counts[i] = sum(r.Bins)
				total += counts[i]
				calls += r.Stats.Calls
				if r.Stats.Fallbacks != 0 {
					// A Redis call that outlives Timeout on a loaded machine
					// falls back to the worker's share, as documented; the
					// fleet's total below must hold regardless.
					t.Logf("worker %d fell back %d times (last error %q) while Redis was up", i, r.Stats.Fallbacks, r.Stats.LastError)
				}
			}
			want := rate * dur.Seconds()
			t.Logf("dispatched %d (target %.0f, %.2f%%), per worker %v, %.3f Redis calls per job", total, want, 100*float64(total)/want, counts, float64(calls)/float64(total))
			if got := float64(total); got < want*0.98 || got > want*1.02 {
				t.Errorf("fleet dispatched %d in %v at %g/s, want %.0f ± 2%%", total, dur, rate, want)
			}
			mean := float64(total) / workers
			for i, c := range counts {
				if float64(c) < 0.6*mean {
					t.Errorf("worker %d (skew %v) dispatched %d, want ≥ 60%% of the mean %.0f", i, specs[i].Skew, c, mean)
				}
			}
		})
	}
}

func TestFleetSurvivesRedisRestart(t *testing.T) {
	srv := testenv.RedisProcess(t)
	const (
		workers  = 4
		rate     = 400.0
		bin      = 100 * time.Millisecond
		dur      = 8 * time.Second
		stopAt   = 2500 * time.Millisecond
		startAt  = 4500 * time.Millisecond
		retry    = 250 * time.Millisecond
		detected = stopAt + 500*time.Millisecond // every worker has needed a lease by then
	)
	key := testenv.UniqueName(t)
	specs := make([]workerSpec, workers)
	for i := range specs {
		specs[i] = workerSpec{Addr: srv.Addr(), Key: key, Rate: rate, Expected: workers,
			Retry: retry, Timeout: 200 * time.Millisecond, Dur: dur, Bin: bin}
	}
	res := runFleet(t, specs, func(start time.Time) {
		time.Sleep(time.Until(start.Add(stopAt)))
		srv.Stop()
		time.Sleep(time.Until(start.Add(startAt)))
		srv.Start()
	})
	fleet := fleetBins(res)
	window := func(bins []int64, from, to time.Duration) int64 { return sum(bins[from/bin : to/bin]) }
	share := rate / workers
	t.Logf("fleet per %v: %v", bin, fleet)
	for i, r := range res {
		t.Logf("worker %d: %d dispatched, modes %s, %+v", i, sum(r.Bins), compactModes(r.Modes), r.Stats)
		if r.Stats.Fallbacks < 1 || r.Stats.Rejoins < 1 {
			t.Errorf("worker %d: %d fallbacks and %d rejoins, want ≥ 1 of each", i, r.Stats.Fallbacks, r.Stats.Rejoins)
		}
		if r.Stats.Mode != redisbucket.ModeRedis {
			t.Errorf("worker %d ended in mode %v, want redis", i, r.Stats.Mode)
		}
		// While Redis is down each worker keeps going at its share.
		got, want := float64(window(r.Bins, detected, startAt)), share*(startAt-detected).Seconds()
		if got < 0.85*want || got > 1.05*want+1 {
			t.Errorf("worker %d dispatched %.0f during the outage, want its share %.0f (-15%%, +5%%)", i, got, want)
		}
	}
	total := float64(sum(fleet))
	t.Logf("fleet: %.0f in %v (target %.0f); %d during the outage after detection (share total %.0f); %d in the last %v (target %.0f)",
		total, dur, rate*dur.Seconds(), window(fleet, detected, startAt), rate*(startAt-detected).Seconds(),
		window(fleet, startAt+time.Second, dur), dur-startAt-time.Second, rate*(dur-startAt-time.Second).Seconds())
	if want := rate * dur.Seconds(); total > want*1.02+1 || total < want*0.9 {
		t.Errorf("fleet dispatched %.0f in %v with Redis down for %v, want ≤ %.0f (+2%%) and ≥ 90%% of it", total, dur, startAt-stopAt, want)
	}
	// Never more than the global limit: no second holds more than the
	// package doc's bound, 2 × Burst + Rate × (1s + LeaseTime), +2 %. The
	// LeaseTime term is used when slots go out late, as they do when the
	// machine holds a worker up.
	limit := (2 + rate*(time.Second+redisbucket.DefaultLeaseTime).Seconds()) * 1.02
	for i := 0; i+10 <= len(fleet); i++ {
		if n := sum(fleet[i : i+10]); float64(n) > limit {
			t.Errorf("the fleet dispatched %d in the second from %v, want ≤ %.0f", n, time.Duration(i)*bin, limit)
		}
	}
	after := startAt + 1*time.Second
	if got, want := float64(window(fleet, after, dur)), rate*(dur-after).Seconds(); got < 0.97*want || got > 1.02*want+1 {
		t.Errorf("after rejoining the fleet dispatched %.0f in %v, want %.0f (-3%%, +2%%)", got, dur-after, want)
	}
}

// compactModes renders a mode per bin as runs: "redis×25 fallback×20 …".
func compactModes(ms []string) string {
	var b strings.Builder
	for i := 0; i < len(ms); {
		j := i
		for j < len(ms) && ms[j] == ms[i] {
			j++
		}
		fmt.Fprintf(&b, "%s×%d ", ms[i], j-i)
		i = j
	}
	return strings.TrimSpace(b.String())
}
