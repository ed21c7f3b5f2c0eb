package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/pacer"
)

// demo feeds p, the source of worker, with jobs at rate until ctx ends:
// payload, or a small JSON document if it is empty.
func (r *Runner) demo(ctx context.Context, worker string, p plugin.Producer, rate float64, payload string) {
	tb, err := pacer.NewTokenBucket(rate, 1, nil)
	if err != nil {
		r.log.Error("demo producer", "err", err)
		return
	}
	r.log.Info("demo producer started", "worker", worker, "rate", rate)
	for n := 1; ; n++ {
		if err := tb.Acquire(ctx, 1); err != nil {
			return
		}
		body := payload
		if body == "" {
			body = fmt.Sprintf(`{"demo":%d,"at":%q}`, n, time.Now().Format(time.RFC3339Nano))
		}
		if err := p.Produce(ctx, []byte(body)); err != nil && ctx.Err() == nil {
			r.log.Warn("demo producer", "worker", worker, "err", err)
			sleep(ctx, time.Second)
		}
	}
}

// sleep waits for d or the end of ctx, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
