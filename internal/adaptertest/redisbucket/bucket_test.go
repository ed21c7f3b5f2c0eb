package redisbucket_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/alicebob/miniredis/v2"
	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
	"github.com/redis/go-redis/v9"
)

func client(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func newBucket(t *testing.T, rdb redis.Scripter, c redisbucket.Config) *redisbucket.Bucket {
	t.Helper()
	b, err := redisbucket.New(rdb, c)
	if err != nil {
		t.Fatalf("New(%+v) = %v", c, err)
	}
	t.Cleanup(b.Close)
	return b
}

// closedAddr is an address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// drain keeps b backlogged from n goroutines until ctx ends and returns
// how many tokens they got.
func drain(ctx context.Context, b *redisbucket.Bucket, n int) int64 {
	var mu sync.Mutex
	var got int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b.Wait(ctx, 1) == nil {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return got
}

func TestNewRejectsBadConfig(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedAddr(t)}) // never dialled: validation comes first
	defer rdb.Close()
	ok := redisbucket.Config{Key: "k", Rate: 10}
	for _, tc := range []struct {
		name  string
		edit  func(*redisbucket.Config)
		field string
	}{
		{"a zero rate", func(c *redisbucket.Config) { c.Rate = 0 }, "rate: 0"},
		{"a negative rate", func(c *redisbucket.Config) { c.Rate = -5 }, "rate: -5"},
		{"a NaN rate", func(c *redisbucket.Config) { c.Rate = math.NaN() }, "rate: NaN"},
		{"a rate above 1e9", func(c *redisbucket.Config) { c.Rate = 2e9 }, "rate: 2e+09"},
		{"an empty key", func(c *redisbucket.Config) { c.Key = "" }, `key: ""`},
		{"a negative burst", func(c *redisbucket.Config) { c.Burst = -1 }, "burst: -1"},
		{"negative expected workers", func(c *redisbucket.Config) { c.ExpectedWorkers = -2 }, "expected_workers: -2"},
		{"a lease time under 1ms", func(c *redisbucket.Config) { c.LeaseTime = time.Microsecond }, "lease_time: 1µs"},
		{"a lease time over 10s", func(c *redisbucket.Config) { c.LeaseTime = time.Minute }, "lease_time: 1m0s"},
		{"a negative retry interval", func(c *redisbucket.Config) { c.RetryInterval = -time.Second }, "retry_interval: -1s"},
		{"a negative timeout", func(c *redisbucket.Config) { c.Timeout = -time.Second }, "timeout: -1s"},
		{"a rate of 1e-300", func(c *redisbucket.Config) { c.Rate = 1e-300 }, "rate: 1e-300"},
		{"a burst below one job", func(c *redisbucket.Config) { c.Burst = 0.5 }, "burst: 0.5"},
		{"a burst of 1e300", func(c *redisbucket.Config) { c.Burst = 1e300 }, "burst / rate: 1e+300 / 10"},
		{"a million expected workers", func(c *redisbucket.Config) { c.ExpectedWorkers = 1e6 }, "expected_workers: 1000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			b, err := redisbucket.New(rdb, c)
			if err == nil {
				b.Close()
				t.Fatalf("New(%+v) = nil error, want one naming %q", c, tc.field)
			}
			if !errors.Is(err, pacer.ErrInvalid) || !strings.HasPrefix(err.Error(), "redisbucket: ") || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "want ") {
				t.Errorf("New(%+v) = %q, want a redisbucket: error wrapping pacer.ErrInvalid that names %q and what is allowed", c, err, tc.field)
			}
		})
	}
	t.Run("a nil client", func(t *testing.T) {
		if _, err := redisbucket.New(nil, ok); !errors.Is(err, pacer.ErrInvalid) || !strings.Contains(err.Error(), "client") {
			t.Errorf("New(nil, …) = %v, want an error naming the client", err)
		}
	})
}

func TestConfigFromTOML(t *testing.T) {
	var c redisbucket.Config
	_, err := toml.Decode(`
key = "sms-provider"
rate = 400
burst = 10
expected_workers = 4
lease_time = "50ms"
retry_interval = "1s"
timeout = "200ms"
prefix = "myapp:fleet:"
`, &c)
	want := redisbucket.Config{Key: "sms-provider", Rate: 400, Burst: 10, ExpectedWorkers: 4,
		LeaseTime: 50 * time.Millisecond, RetryInterval: time.Second, Timeout: 200 * time.Millisecond, Prefix: "myapp:fleet:"}
	if err != nil || c != want {
		t.Errorf("toml.Decode = %+v, %v; want %+v", c, err, want)
	}
}

func TestNewFailsWhenRedisRefusesTheScript(t *testing.T) {
	srv := testenv.RedisProcess(t) // its own server: the test changes its ACL
	rdb := client(t, srv.Addr())
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		acl  []any // ACL rules for the default user
		want string
	}{
		{"with scripting denied", []any{"-eval", "-evalsha"}, "NOPERM"},
		{"with TIME denied inside the script", []any{"-time"}, "can't run this command"},
		{"with the bucket's key pattern denied", []any{"resetkeys", "~other:*"}, "NOPERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules := append([]any{"ACL", "SETUSER", "default"}, tc.acl...)
			if err := rdb.Do(ctx, rules...).Err(); err != nil {
				t.Fatalf("ACL SETUSER: %v", err)
			}
			t.Cleanup(func() { rdb.Do(ctx, "ACL", "SETUSER", "default", "+@all", "allkeys") })
			b, err := redisbucket.New(rdb, redisbucket.Config{Key: testenv.UniqueName(t), Rate: 10})
			if err == nil {
				b.Close()
				t.Fatal("New = nil error, want ErrRefused")
			}
			if !errors.Is(err, redisbucket.ErrRefused) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Errorf("New = %q, want an error wrapping ErrRefused that quotes Redis (%s)", err, tc.want)
			}
		})
	}
}

func TestWaitArgumentsCancelAndClose(t *testing.T) {
	rdb := client(t, testenv.Redis(t))
	b := newBucket(t, rdb, redisbucket.Config{Key: testenv.UniqueName(t), Rate: 1}) // one token a second
	ctx := context.Background()
	t.Run("n below 1 is an error", func(t *testing.T) {
		if err := b.Wait(ctx, 0); !errors.Is(err, pacer.ErrInvalid) || !strings.Contains(err.Error(), "n: 0") {
			t.Errorf("Wait(ctx, 0) = %v, want an error naming n: 0", err)
		}
	})
	t.Run("the burst is there at once", func(t *testing.T) {
		if err := b.Wait(ctx, 1); err != nil {
			t.Fatalf("Wait(ctx, 1) = %v", err)
		}
	})
	first := time.Now() // the burst's slot was due about now; the next is due 1s later
	t.Run("a cancelled wait takes nothing", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := b.Wait(cctx, 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait with a 50ms deadline at 1/s = %v, want context.DeadlineExceeded", err)
		}
		if got := b.Stats().Dispatched; got != 1 {
			t.Errorf("Stats().Dispatched = %d, want 1", got)
		}
		// The next Wait gets the slot due 1s after the first, not the
		// one after it.
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := b.Wait(wctx, 1); err != nil {
			t.Fatalf("Wait after a cancelled one = %v", err)
		}
		if got := time.Since(first); got < 900*time.Millisecond || got > 1500*time.Millisecond {
			t.Errorf("the Wait after a cancelled one returned %v after the first token, want about 1s (the slot the cancelled Wait left)", got)
		}
		if s := b.Stats(); s.Dispatched != 2 || s.Expired != 0 {
			t.Errorf("Stats() = %+v, want 2 dispatched, none expired", s)
		}
	})
	t.Run("Close ends waiting and later waits", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() { errc <- b.Wait(ctx, 5) }()
		testenv.WaitFor(t, 10*time.Second, "the Wait to block", func() bool { return b.Stats().Waiting > 0 })
		select {
		case err := <-errc:
			t.Fatalf("Wait(ctx, 5) at 1/s returned %v before Close", err)
		default:
		}
		b.Close()
		if err := <-errc; !errors.Is(err, redisbucket.ErrClosed) {
			t.Errorf("a Wait pending at Close returned %v, want ErrClosed", err)
		}
		if err := b.Wait(ctx, 1); !errors.Is(err, redisbucket.ErrClosed) {
			t.Errorf("Wait after Close = %v, want ErrClosed", err)
		}
		b.Close() // again: nothing happens
	})
}

func TestLeasesBatchRedisCalls(t *testing.T) {
	rdb := client(t, testenv.Redis(t))
	const rate = 2000.0
	b := newBucket(t, rdb, redisbucket.Config{Key: testenv.UniqueName(t), Rate: rate})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got := drain(ctx, b, 2)
	s := b.Stats()
	perJob := float64(s.Calls) / float64(got)
	t.Logf("%d tokens in 1s at %g/s; %+v; %.4f calls per job", got, rate, s, perJob)
	if float64(got) < rate*0.97 || float64(got) > rate*1.03+1 {
		t.Errorf("got %d tokens in 1s at %g/s, want %g ± 3%%", got, rate, rate)
	}
	if perJob > 0.05 {
		t.Errorf("%d Redis calls for %d tokens = %.3f per job, want ≤ 0.05", s.Calls, got, perJob)
	}
}

// Two workers backlogged on a low shared rate (10 waiters each, as a CLI
// worker with max_in_flight 10) lease in turns, LeaseTime's worth of
// their share at a time: about one Redis call per lease, not one per slot
// with empty grants between while they contend.
func TestContendingWorkersLeaseTheirShare(t *testing.T) {
	addr := testenv.Redis(t)
	const rate, dur, waiters = 40.0, 3 * time.Second, 10
	key := testenv.UniqueName(t)
	var bs [2]*redisbucket.Bucket
	var counts [2]atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	for i := range bs {
		bs[i] = newBucket(t, client(t, addr), redisbucket.Config{Key: key, Rate: rate})
		p, err := pacer.New(pacer.Config{Rate: rate, Limiter: bs[i]}) // alone, each would take it all
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					pm, err := p.Acquire(ctx, 1)
					if err != nil {
						return
					}
					counts[i].Add(1)
					pm.Done(nil)
				}
			}()
		}
	}
	wg.Wait()
	var total int64
	var calls uint64
	for i, b := range bs {
		s := b.Stats()
		t.Logf("worker %d: %d jobs, %+v", i, counts[i].Load(), s)
		total += counts[i].Load()
		calls += s.Calls
	}
	want := rate * dur.Seconds()
	perJob := float64(calls) / float64(total)
	t.Logf("%d jobs in %v at %g/s (target %.0f), %d Redis calls, %.3f a job", total, dur, rate, want, calls, perJob)
	if got := float64(total); got < want*0.95 || got > want*1.05+1 {
		t.Errorf("two workers sharing %g/s dispatched %d in %v, want %.0f ± 5%%", rate, total, dur, want)
	}
	for i := range counts {
		if c := counts[i].Load(); float64(c) < 0.3*float64(total) {
			t.Errorf("worker %d dispatched %d of %d, want ≥ 30%%", i, c, total)
		}
	}
	if perJob > 1 {
		t.Errorf("%d Redis calls for %d jobs = %.2f a job, want ≤ 1 (a lease is 2 slots here)", calls, total, perJob)
	}
}

// redisTime returns Redis's clock in µs.
func redisTime(t *testing.T, rdb *redis.Client) float64 {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return float64(now.UnixNano()) / 1e3
}

func TestUnusedLeasesGoBack(t *testing.T) {
	rdb := client(t, testenv.Redis(t))
	const rate = 1000.0
	for _, tc := range []struct {
		name string
		stop func(b *redisbucket.Bucket)
	}{
		{"on Close", func(b *redisbucket.Bucket) { b.Close() }},
		{"when the worker goes idle", func(b *redisbucket.Bucket) {
			testenv.Eventually(time.Second, func() bool { return b.Stats().Returned > 0 })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testenv.UniqueName(t)
			b := newBucket(t, rdb, redisbucket.Config{Key: key, Rate: rate})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			drain(ctx, b, 1) // busy: leases reach ahead of now
			cancel()
			tc.stop(b)
			s := b.Stats()
			zero, err := rdb.HGet(context.Background(), "pacer:fleet:{"+key+"}", "zero").Float64()
			if err != nil {
				t.Fatal(err)
			}
			ahead := zero - redisTime(t, rdb)
			t.Logf("%+v; the bucket's schedule ends %.0fµs from now", s, ahead)
			if s.Returned == 0 {
				t.Errorf("Stats().Returned = 0 after %s, want the unused slots back", tc.name)
			}
			if unused := s.Granted - s.Dispatched - s.Expired; s.Returned != unused {
				t.Errorf("Returned %d, want all %d granted and neither used nor expired", s.Returned, unused)
			}
			if ahead > 1e6/rate {
				t.Errorf("the shared schedule still ends %.0fµs in the future, want ≤ one slot (%.0fµs)", ahead, 1e6/rate)
			}
		})
	}
}

func TestFallsBackWhenRedisIsUnreachable(t *testing.T) {
	var logs testenv.SyncBuffer
	rdb := redis.NewClient(&redis.Options{Addr: closedAddr(t), ContextTimeoutEnabled: true, DialerRetries: 1})
	defer rdb.Close()
	const rate, workers = 200.0, 4
	b := newBucket(t, rdb, redisbucket.Config{
		Key: testenv.UniqueName(t), Rate: rate, ExpectedWorkers: workers, RetryInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	s := b.Stats()
	if s.Mode != redisbucket.ModeFallback || s.Fallbacks != 1 || s.Share != rate/workers || s.FallbackSince.IsZero() || s.LastError == "" {
		t.Fatalf("Stats() = %+v, want mode fallback, 1 fallback, share %g, its start and the error", s, rate/workers)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "falling back") {
		t.Errorf("log = %q, want a warning about the fallback", logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got := drain(ctx, b, 2)
	share := rate / workers
	if float64(got) < share*0.95 || float64(got) > share*1.05+1 {
		t.Errorf("dispatched %d in 1s in fallback, want the share %g ± 5%% (+1 burst)", got, share)
	}
	if s := b.Stats(); s.Calls < 5 || s.Errors != s.Calls {
		t.Errorf("Stats() = %+v, want it to keep trying Redis every 100ms", s)
	}
}

// The smallest share a fleet can have during an outage (the least rate
// shared by the most workers) waits for its next token without spinning
// and gives up when the context ends.
func TestTinyFallbackShareHonoursContext(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedAddr(t), ContextTimeoutEnabled: true, DialerRetries: 1})
	defer rdb.Close()
	b := newBucket(t, rdb, redisbucket.Config{
		Key: testenv.UniqueName(t), Rate: pacer.MinRate, ExpectedWorkers: redisbucket.MaxExpectedWorkers,
		Logger: slog.New(slog.DiscardHandler),
	})
	if s := b.Stats(); s.Mode != redisbucket.ModeFallback {
		t.Fatalf("mode %v, want fallback", s.Mode)
	}
	if err := b.Wait(context.Background(), 1); err != nil {
		t.Fatalf("Wait(1) on the full local share = %v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait(1) on the empty share %g/s = %v, want %v", b.Stats().Share, err, context.DeadlineExceeded)
	}
}

func TestSetRate(t *testing.T) {
	rdb := client(t, testenv.Redis(t))
	b := newBucket(t, rdb, redisbucket.Config{Key: testenv.UniqueName(t), Rate: 100})
	if err := b.SetRate(0); !errors.Is(err, pacer.ErrInvalid) || !strings.Contains(err.Error(), "rate: 0") {
		t.Errorf("SetRate(0) = %v, want an error naming rate: 0", err)
	}
	if err := b.SetRate(1000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if got := drain(ctx, b, 1); got < 475 || got > 526 {
		t.Errorf("got %d in 0.5s after SetRate(1000), want 500 ± 5%%", got)
	}
	if r := b.Stats().Rate; r != 1000 {
		t.Errorf("Stats().Rate = %g, want 1000", r)
	}
}

func TestBurstIsThereAtOnce(t *testing.T) {
	rdb := client(t, testenv.Redis(t))
	// Burst 10 at 10/s: ten slots a second old, far beyond LeaseTime.
	b := newBucket(t, rdb, redisbucket.Config{Key: testenv.UniqueName(t), Rate: 10, Burst: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// The burst, plus the slots due at 0.1s and 0.2s (0.3s is on the edge).
	if got := drain(ctx, b, 2); got < 12 || got > 13 {
		t.Errorf("got %d in 0.3s from a full bucket of 10 at 10/s, want 12 or 13 (burst + rate × t); %+v", got, b.Stats())
	}
}

// The CLI's "embedded" Redis is miniredis (gopher-lua): the script must
// run there too. This checks compatibility; the limit itself is tested on
// real Redis above.
func TestRunsOnMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	b := newBucket(t, client(t, m.Addr()), redisbucket.Config{Key: testenv.UniqueName(t), Rate: 200})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	got := drain(ctx, b, 1)
	if s := b.Stats(); s.Mode != redisbucket.ModeRedis || s.Errors != 0 || got < 95 || got > 106 {
		t.Errorf("got %d in 0.5s at 200/s on miniredis, want 100 ± 5%% with no errors; %+v", got, s)
	}
}
