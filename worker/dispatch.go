package worker

import (
	"context"
	"sync"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
)

// inflight runs admitted jobs in goroutines and waits for them on drain.
type inflight struct {
	wg sync.WaitGroup
}

// start runs j through env.Handle in a goroutine, reports the outcome on
// pm and then calls settle with it (ack, nak, …).
func (f *inflight) start(env Env, pm pacer.Permit, j sink.Job, settle func(error)) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		out := env.Handle(j)
		pm.Done(out)
		settle(out)
	}()
}

// wait waits for the jobs in flight, at most until ctx ends; it reports
// whether they all finished.
func (f *inflight) wait(ctx context.Context) bool {
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
