package sources

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// Issue 24 item 7: at the first start against a queue no task was ever
// enqueued to (so not in asynq:queues yet), the backlog is 0, not a
// failed read (which the runner logs at warn): one debug line, then the
// queue's real backlog once a task is in it.
func TestAsynqQueueNotCreatedYetIsEmpty(t *testing.T) {
	t.Parallel()
	var log testenv.SyncBuffer
	b := brokers.New(config.Redis{Addr: testenv.Redis(t)}, config.NATS{}, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(b.Close)
	s := &asynqSource{cfg: AsynqConfig{Queue: testenv.UniqueName(t), TaskType: DefaultTaskType, MaxRetry: 1}}
	s.UseBrokers(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.probe.Close(); s.client.Close() })
	for range 3 {
		if bl, err := probe.Backlog(ctx); err != nil || bl != (pacer.Backlog{}) {
			t.Fatalf("Backlog of a queue not created yet: %+v, %v; want 0, no error", bl, err)
		}
	}
	if got := log.String(); strings.Count(got, "level=DEBUG") != 1 || !strings.Contains(got, "not created yet") || strings.Contains(got, "level=WARN") {
		t.Errorf("log after 3 reads of a queue not created yet: want one debug line saying so, no warn:\n%s", got)
	}
	if err := s.Produce(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if bl, err := probe.Backlog(ctx); err != nil || bl.Pending != 1 {
		t.Errorf("Backlog after one task enqueued: %+v, %v; want 1 pending", bl, err)
	}
}
