package asynqpacer_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

func TestNewProbeReadsPendingAndOldestAge(t *testing.T) {
	addr := testenv.Redis(t)
	q1, q2 := uniqueQueue(t, addr), uniqueQueue(t, addr)
	probe, err := asynqpacer.NewProbe(asynq.RedisClientOpt{Addr: addr}, q1, q2)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	ctx := context.Background()

	// Neither queue exists yet.
	if _, err := probe.Backlog(ctx); !errors.Is(err, asynqpacer.ErrQueueNotFound) || !strings.Contains(err.Error(), q1) {
		t.Fatalf("Backlog before any enqueue = %v, want ErrQueueNotFound naming %q", err, q1)
	}

	before := time.Now()
	enqueue(t, addr, q1, "a", 3)
	afterFirst := time.Now()
	enqueue(t, addr, q2, "b", 2)
	start := time.Now()
	b, err := probe.Backlog(ctx)
	end := time.Now()
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	if b.Pending != 5 {
		t.Errorf("Pending = %d, want 5 (3 + 2)", b.Pending)
	}
	// The oldest task became pending between before and afterFirst.
	if lo, hi := start.Sub(afterFirst), end.Sub(before); b.OldestAge < lo || b.OldestAge > hi {
		t.Errorf("OldestAge = %v, want in [%v, %v]", b.OldestAge, lo, hi)
	}
	info := queueInfo(t, addr, q1)
	if d := info.Latency - b.OldestAge; d < 0 || d > time.Second {
		t.Errorf("Inspector's latency %v vs OldestAge %v: want the same reading, a moment later", info.Latency, b.OldestAge)
	}

	// An empty queue: nothing pending, no age.
	in := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	defer in.Close()
	for _, q := range []string{q1, q2} {
		if _, err := in.DeleteAllPendingTasks(q); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := probe.Backlog(ctx); err != nil || b != (pacer.Backlog{}) {
		t.Errorf("Backlog of empty queues = %+v, %v; want zero, nil", b, err)
	}
}

func TestNewProbeRejectsBadInput(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}
	tests := []struct {
		name string
		make func() (*asynqpacer.Probe, error)
		want string
	}{
		{"with a nil redis option", func() (*asynqpacer.Probe, error) { return asynqpacer.NewProbe(nil, "q") }, "redis option: nil"},
		{"with no queues", func() (*asynqpacer.Probe, error) { return asynqpacer.NewProbe(opt) }, "queues: []"},
		{"with an empty queue name", func() (*asynqpacer.Probe, error) { return asynqpacer.NewProbe(opt, "a", " ") }, `queues[1]: " "`},
		{"with a queue listed twice", func() (*asynqpacer.Probe, error) { return asynqpacer.NewProbe(opt, "a", "a") }, "not already listed"},
		{"with a nil client", func() (*asynqpacer.Probe, error) { return asynqpacer.NewProbeFromRedisClient(nil, "q") }, "client: nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.make()
			if p != nil || !errors.Is(err, pacer.ErrInvalid) || !strings.HasPrefix(err.Error(), "asynqpacer: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("= %v, %v; want nil and an asynqpacer error wrapping pacer.ErrInvalid containing %q", p, err, tt.want)
			}
		})
	}
}

func TestNewProbeOnARedisThatRefusesConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	probe, err := asynqpacer.NewProbe(asynq.RedisClientOpt{Addr: addr, DialTimeout: time.Second}, "default")
	if err != nil {
		t.Fatalf("NewProbe = %v; want no error before the first read", err)
	}
	defer probe.Close()
	_, err = probe.Backlog(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "asynqpacer: reading the backlog") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Backlog = %v, want an asynqpacer error saying the connection was refused", err)
	}

	// In a pacer, a failing probe is counted and keeps the factor.
	p := testenv.NewPacer(t, pacer.Config{Rate: 100, Probe: probe})
	p.Step(context.Background())
	if s := p.Stats(); s.ProbeErrors != 1 || s.Factor != 1 {
		t.Fatalf("after a failed probe: ProbeErrors = %d, Factor = %v; want 1, 1", s.ProbeErrors, s.Factor)
	}
}

// BenchmarkBacklogRead compares a backlog read by Inspector.GetQueueInfo
// with Probe.Backlog on a queue of 10,000 pending tasks.
//
//	go test -run '^$' -bench BacklogRead ./internal/adaptertest/asynqpacer/
func BenchmarkBacklogRead(b *testing.B) {
	addr := testenv.Redis(b)
	q := uniqueQueue(b, addr)
	enqueue(b, addr, q, "bench", 10_000, asynq.Retention(time.Hour))
	b.Run("Inspector.GetQueueInfo", func(b *testing.B) {
		in := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
		defer in.Close()
		for b.Loop() {
			if _, err := in.GetQueueInfo(q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Probe.Backlog", func(b *testing.B) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		probe, err := asynqpacer.NewProbeFromRedisClient(c, q)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for b.Loop() {
			if _, err := probe.Backlog(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
