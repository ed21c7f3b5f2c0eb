package asynqpacer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/pacer"
)

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(workerMain())
	}
	// go-redis logs every failed dial; the fault tests make many.
	redis.SetLogger(quietRedisLogger{})
	goleak.VerifyTestMain(m,
		// go-redis redials in the background after a failed dial and
		// notices a closed pool only after its next one-second sleep.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}

// quietLogger discards Asynq's logs: tests that stop Redis make it log an
// error a millisecond.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}

// uniqueQueue returns a queue name no other test uses, and deletes the
// queue (and keys under its prefix) at cleanup.
func uniqueQueue(t testing.TB, addr string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	q := fmt.Sprintf("asynqpacer-test-%s-%s", name, hex.EncodeToString(b))
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ctx := context.Background()
		var keys []string
		for _, pattern := range []string{"asynq:{" + q + "}:*", q + ":*"} {
			iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
		}
		for i := 0; i < len(keys); i += 500 {
			c.Del(ctx, keys[i:min(i+500, len(keys))]...)
		}
		c.SRem(ctx, "asynq:queues", q)
	})
	return q
}

// enqueue puts n tasks of type typ into queue q with 8 clients at once and
// returns their IDs.
func enqueue(t testing.TB, addr, q, typ string, n int, opts ...asynq.Option) []string {
	t.Helper()
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: addr, PoolSize: 16})
	defer c.Close()
	ids := make([]string, n)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				info, err := c.Enqueue(asynq.NewTask(typ, fmt.Appendf(nil, "%d", i)), append([]asynq.Option{asynq.Queue(q)}, opts...)...)
				if err != nil {
					errs <- err
					return
				}
				ids[i] = info.ID
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("enqueue to %s: %v", q, err)
	}
	return ids
}

// serverConfig is the asynq.Config the tests use: the adapter's IsFailure
// and RetryDelay, and short check intervals so retried tasks come back soon.
func serverConfig(q string, concurrency int) asynq.Config {
	return asynq.Config{
		Concurrency:              concurrency,
		Queues:                   map[string]int{q: 1},
		IsFailure:                asynqpacer.IsFailure,
		RetryDelayFunc:           asynqpacer.RetryDelay,
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		ShutdownTimeout:          500 * time.Millisecond,
		Logger:                   quietLogger{},
	}
}

// startServer starts an Asynq server and shuts it down at cleanup (or when
// the test calls the returned stop, whichever is first).
func startServer(t testing.TB, addr string, cfg asynq.Config, h asynq.Handler) (stop func()) {
	t.Helper()
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, cfg)
	if err := srv.Start(h); err != nil {
		t.Fatalf("asynq server Start: %v", err)
	}
	var once sync.Once
	stop = func() { once.Do(srv.Shutdown) }
	t.Cleanup(stop)
	return stop
}

// runPacer runs p's controller until cleanup.
func runPacer(t testing.TB, p *pacer.Pacer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// starts records when handlers start.
type starts struct {
	mu sync.Mutex
	ts []time.Time
}

func (s *starts) add(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ts = append(s.ts, t)
	return len(s.ts)
}

func (s *starts) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ts)
}

func (s *starts) sorted() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := append([]time.Time(nil), s.ts...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts
}

// maxInWindow returns the most starts in any window [t, t+w) that begins at
// a start.
func maxInWindow(ts []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Before(ts[i].Add(w)) {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// queueInfo returns Asynq's own view of q.
func queueInfo(t testing.TB, addr, q string) *asynq.QueueInfo {
	t.Helper()
	in := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer in.Close()
	info, err := in.GetQueueInfo(q)
	if err != nil {
		t.Fatalf("Inspector.GetQueueInfo(%q): %v", q, err)
	}
	return info
}

// mustMiddleware is asynqpacer.Middleware for arguments a test knows are
// valid (TestMiddlewareRejectsBadInput tests the others).
func mustMiddleware(p *pacer.Pacer, opts ...asynqpacer.Option) asynq.MiddlewareFunc {
	mw, err := asynqpacer.Middleware(p, opts...)
	if err != nil {
		panic(err)
	}
	return mw
}
