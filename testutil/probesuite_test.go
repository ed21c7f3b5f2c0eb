package testutil_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// memQueue is an in-memory queue whose probe reports exactly what it
// holds: the reference against which the suite itself is checked.
type memQueue struct {
	mu       sync.Mutex
	enqueued []time.Time // enqueue times of pending jobs, oldest first
}

func (q *memQueue) Enqueue(t *testing.T, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.enqueued = append(q.enqueued, time.Now())
	}
}

func (q *memQueue) Take(t *testing.T, n int) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	if n > len(q.enqueued) {
		t.Fatalf("Take(%d) with %d pending", n, len(q.enqueued))
	}
	q.enqueued = q.enqueued[n:]
}

func (q *memQueue) Probe() pacer.Probe {
	return pacer.ProbeFunc(func(ctx context.Context) (pacer.Backlog, error) {
		if err := ctx.Err(); err != nil {
			return pacer.Backlog{}, err
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		b := pacer.Backlog{Pending: int64(len(q.enqueued))}
		if len(q.enqueued) > 0 {
			b.OldestAge = time.Since(q.enqueued[0])
		}
		return b, nil
	})
}

func TestProbeSuiteOnAnInMemoryQueue(t *testing.T) {
	testutil.TestProbe(t, func(t *testing.T) testutil.ProbeQueue { return &memQueue{} },
		testutil.ProbeFeatures{OldestAge: true})
}
