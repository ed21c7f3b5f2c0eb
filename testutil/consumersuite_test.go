package testutil_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// memConsumerQueue is an in-memory queue and a paced consumer over it, a
// permit per job, that gives back every job whose outcome is not nil: the
// reference against which the consumer suite itself is checked.
type memConsumerQueue struct {
	mu    sync.Mutex
	jobs  []string
	ready chan struct{} // closed and replaced when jobs grows
}

func newMemConsumerQueue() *memConsumerQueue { return &memConsumerQueue{ready: make(chan struct{})} }

func (q *memConsumerQueue) Enqueue(t *testing.T, payloads ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, payloads...)
	close(q.ready)
	q.ready = make(chan struct{})
}

// take pops the oldest job, waiting for one until ctx ends.
func (q *memConsumerQueue) take(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		if len(q.jobs) > 0 {
			j := q.jobs[0]
			q.jobs = q.jobs[1:]
			q.mu.Unlock()
			return j, true
		}
		ready := q.ready
		q.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return "", false
		}
	}
}

func (q *memConsumerQueue) Consume(t *testing.T, p *pacer.Pacer, h func(context.Context, string) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var handlers, loop sync.WaitGroup
	loop.Go(func() {
		for {
			job, ok := q.take(ctx)
			if !ok {
				return
			}
			pm, err := p.Acquire(ctx, 1)
			if err != nil {
				q.Enqueue(t, job) // taken, not handled: given back
				return
			}
			handlers.Go(func() {
				err := h(context.Background(), job)
				pm.Done(err)
				if err != nil {
					q.Enqueue(t, job)
				}
			})
		}
	})
	return func() {
		cancel()
		loop.Wait()
		handlers.Wait()
	}
}

func TestConsumerSuiteOnAnInMemoryQueue(t *testing.T) {
	testutil.TestConsumer(t, func(t *testing.T) testutil.ConsumerQueue { return newMemConsumerQueue() },
		testutil.ConsumerFeatures{Redelivers: true})
}
