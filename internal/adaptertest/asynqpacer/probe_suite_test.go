package asynqpacer_test

import (
	"testing"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// suiteQueue is a testutil.ProbeQueue over one Asynq queue of a subtest's
// own, on real Redis.
type suiteQueue struct {
	addr  string
	name  string
	in    *asynq.Inspector
	probe *asynqpacer.Probe
}

// newSuiteQueue makes a queue of t's own and a Probe reading it.
// Asynq knows a queue only once a task was enqueued to it, and Probe
// reports a queue it does not know as ErrQueueNotFound (see
// TestNewProbeReadsPendingAndOldestAge), so an empty queue here is one
// that had a task, since deleted.
func newSuiteQueue(t *testing.T) testutil.ProbeQueue {
	addr := testenv.Redis(t)
	q := &suiteQueue{addr: addr, name: uniqueQueue(t, addr), in: asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})}
	t.Cleanup(func() { q.in.Close() })
	q.Enqueue(t, 1)
	if n, err := q.in.DeleteAllPendingTasks(q.name); err != nil || n != 1 {
		t.Fatalf("Inspector.DeleteAllPendingTasks(%q) = %d, %v; want 1, nil", q.name, n, err)
	}
	probe, err := asynqpacer.NewProbe(asynq.RedisClientOpt{Addr: addr}, q.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close() })
	q.probe = probe
	return q
}

func (q *suiteQueue) Enqueue(t *testing.T, n int) {
	t.Helper()
	enqueue(t, q.addr, q.name, "probe-suite", n)
}

// Take removes the n oldest pending tasks with the Inspector. A server's
// dequeue moves a task out of the pending list just as this does, but
// cannot be told to take exactly n.
func (q *suiteQueue) Take(t *testing.T, n int) {
	t.Helper()
	tasks, err := q.in.ListPendingTasks(q.name, asynq.PageSize(n)) // oldest first
	if err != nil {
		t.Fatalf("Inspector.ListPendingTasks(%q): %v", q.name, err)
	}
	if len(tasks) != n {
		t.Fatalf("Take(%d): %d tasks pending in %q, want at least %d", n, len(tasks), q.name, n)
	}
	for _, task := range tasks {
		if err := q.in.DeleteTask(q.name, task.ID); err != nil {
			t.Fatalf("Inspector.DeleteTask(%q, %q): %v", q.name, task.ID, err)
		}
	}
}

func (q *suiteQueue) Probe() pacer.Probe { return q.probe }

func TestNewProbePassesTheProbeSuite(t *testing.T) {
	testutil.TestProbe(t, newSuiteQueue, testutil.ProbeFeatures{OldestAge: true})
}
