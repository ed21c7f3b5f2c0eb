package natsbucket_test

// The fleet tests run real worker processes: the test binary re-executes
// itself with NATSBUCKET_TEST_WORKER set to a JSON workerSpec, and
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/pacer"
)

const workerEnv = "NATSBUCKET_TEST_WORKER"

type workerSpec struct {
	URL, Bucket, Key string
	Rate             float64
	Start            int64 // unix ns, wall clock
	Dur, Bin         time.Duration
	Skew             time.Duration // added to the clock injected into the Bucket and the Pacer
}

type workerResult struct {
	Ready time.Duration // time from ready to start; < 0 means it was late
	Bins  []int64       // dispatches per bin of wall-clock time from Start
	Stats natsbucket.Stats
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
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 2 }
	nc, err := nats.Connect(s.URL)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	jsc, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	kv, err := jsc.KeyValue(context.Background(), s.Bucket)
	if err != nil {
		return fail(err)
	}
	clock := pacer.Clock(skewClock{s.Skew})
	b, err := natsbucket.New(kv, natsbucket.Config{Key: s.Key, Rate: s.Rate, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return fail(err)
	}
	p, err := pacer.New(pacer.Config{Rate: s.Rate, Limiter: b, Clock: clock})
	if err != nil {
		return fail(err)
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
		wg.Go(func() {
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
		})
	}
	wg.Wait()
	p.Close()
	res.Stats = b.Stats()
	b.Close()
	for i := range bins {
		res.Bins = append(res.Bins, bins[i].Load())
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return fail(err)
	}
	return 0
}

// runFleet runs one worker process per spec, all starting at a common time
// two seconds from now.
func runFleet(t *testing.T, specs []workerSpec) []workerResult {
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

// Four worker processes share 400/s through one key: the fleet gets the
// rate within 2 % (slots counted after the start, none before), each
// worker a fair part, with one worker's clock off by 2s or not.
func TestFleetSharesOneLimit(t *testing.T) {
	_, js := connect(t)
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
		{"one worker's clock 2s behind", -2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := newKV(t, js)
			specs := make([]workerSpec, workers)
			for i := range specs {
				specs[i] = workerSpec{URL: natsURL(), Bucket: kv.Bucket(), Key: "fleet", Rate: rate, Dur: dur, Bin: 100 * time.Millisecond}
			}
			specs[1].Skew = tc.skew
			res := runFleet(t, specs)
			var total int64
			var calls, reqs uint64
			counts := make([]int64, workers)
			for i, r := range res {
				counts[i] = sum(r.Bins)
				total += counts[i]
				calls += r.Stats.Calls
				reqs += r.Stats.Requests
				if r.Stats.Fallbacks != 0 {
					// A NATS request that outlives Timeout on a loaded machine
					// falls back to the worker's share, as documented; the
					// fleet's total below must hold regardless.
					t.Logf("worker %d fell back %d times (last error %q) while NATS was up", i, r.Stats.Fallbacks, r.Stats.LastError)
				}
			}
			want := rate * dur.Seconds()
			t.Logf("dispatched %d (target %.0f, %.2f%%), per worker %v, %.3f lease calls and %.3f NATS requests per job",
				total, want, 100*float64(total)/want, counts, float64(calls)/float64(total), float64(reqs)/float64(total))
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
