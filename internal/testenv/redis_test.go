package testenv_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/internal/testenv"
)

func TestRedisAnswersPing(t *testing.T) {
	addr := testenv.Redis(t)
	if err := testenv.PingRedis(addr, 2*time.Second); err != nil {
		t.Fatalf("PingRedis(%q) = %v, want nil", addr, err)
	}
}

// What tests write never lands in the user's Redis: without REDIS_ADDR,
// Redis is a server of the test's own, not the one on DefaultRedisAddr.
func TestRedisIsNotTheUsersRedis(t *testing.T) {
	t.Setenv("REDIS_ADDR", "")
	if addr := testenv.Redis(t); addr == testenv.DefaultRedisAddr {
		t.Fatalf("Redis() = %s, the user's Redis; want a redis-server of the test's own", addr)
	}
}

func TestRedisProcessStopStartKeepsPortAndData(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs after the server's cleanup
	s := testenv.RedisProcess(t)
	if s.Addr() == testenv.DefaultRedisAddr {
		t.Fatalf("RedisProcess().Addr() = %s, the shared server; want a port of its own", s.Addr())
	}
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	addr := s.Addr()

	s.Stop()
	if err := testenv.PingRedis(addr, 200*time.Millisecond); err == nil {
		t.Fatalf("PingRedis after Stop = nil, want an error")
	}
	s.Stop() // a second Stop does nothing

	s.Start()
	if got := s.Addr(); got != addr {
		t.Fatalf("Addr() after Start = %s, want %s", got, addr)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k after Stop/Start = %q, %v; want \"v\", nil (Stop saves)", got, err)
	}

	s.Kill()
	s.Start()
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatalf("SET after Kill/Start: %v", err)
	}
	s.Restart()
	if got, err := c.Get(ctx, "k2").Result(); err != nil || got != "v2" {
		t.Fatalf("GET k2 after Restart = %q, %v; want \"v2\", nil", got, err)
	}
}

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the real test.
type recorder struct {
	testing.TB
	mu              sync.Mutex
	skipped, failed bool
	msg             string
	cleanups        []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) TempDir() string  { return r.TB.TempDir() }
func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func run(tb testing.TB, f func(testing.TB)) *recorder {
	r := &recorder{TB: tb}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return r
}

func TestNoServer(t *testing.T) {
	tests := []struct {
		name     string
		ci       string
		f        func(testing.TB)
		wantSkip bool
		wantFail bool
	}{
		{"without redis-server on PATH, RedisProcess skips", "", func(tb testing.TB) { testenv.RedisProcess(tb) }, true, false},
		{"without redis-server on PATH under CI=true, RedisProcess fails", "true", func(tb testing.TB) { testenv.RedisProcess(tb) }, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv("CI", tt.ci)
			r := run(t, tt.f)
			if r.skipped != tt.wantSkip || r.failed != tt.wantFail {
				t.Fatalf("skipped, failed = %v, %v; want %v, %v", r.skipped, r.failed, tt.wantSkip, tt.wantFail)
			}
			if !strings.Contains(r.msg, "REDIS_ADDR") || !strings.Contains(r.msg, "install redis-server") {
				t.Fatalf("message %q does not say how to get a server", r.msg)
			}
		})
	}
	t.Run("without redis-sentinel on PATH, the skip names it, not a missing server", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		t.Setenv("CI", "")
		r := run(t, func(tb testing.TB) { testenv.RedisSentinel(tb, "m", "127.0.0.1:1") })
		if !r.skipped || !strings.Contains(r.msg, "redis-sentinel is not on PATH") ||
			!strings.Contains(r.msg, "apt-get install redis-sentinel") || strings.Contains(r.msg, "no Redis server") {
			t.Fatalf("skipped %v, message %q; want a skip that names redis-sentinel and how to install it", r.skipped, r.msg)
		}
	})
	t.Run("with REDIS_ADDR refusing connections, Redis skips", func(t *testing.T) {
		t.Setenv("REDIS_ADDR", "127.0.0.1:1")
		t.Setenv("CI", "")
		if r := run(t, func(tb testing.TB) { testenv.Redis(tb) }); !r.skipped {
			t.Fatalf("skipped = false, want true")
		}
	})
	t.Run("with REDIS_ADDR refusing connections under CI=true, Redis fails", func(t *testing.T) {
		t.Setenv("REDIS_ADDR", "127.0.0.1:1")
		t.Setenv("CI", "true")
		if r := run(t, func(tb testing.TB) { testenv.Redis(tb) }); !r.failed {
			t.Fatalf("failed = false, want true")
		}
	})
}
