package natspacer_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// suiteQueue is a testutil.ProbeQueue over a stream and durable pull
// consumer of a subtest's own, and a natspacer.Probe of that consumer.
type suiteQueue struct {
	f     *fixture
	probe *natspacer.Probe
}

func (q *suiteQueue) Enqueue(t *testing.T, n int) {
	t.Helper()
	q.f.publish(t, n)
}

// Take fetches n messages through the consumer, hands each one's metadata
// to the probe as Consume does, and acknowledges each with DoubleAck, so
// the server has settled them when Take returns.
func (q *suiteQueue) Take(t *testing.T, n int) {
	t.Helper()
	for got := 0; got < n; {
		batch, err := q.f.cons.Fetch(n-got, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("Fetch(%d): %v", n-got, err)
		}
		before := got
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				t.Fatalf("Metadata: %v", err)
			}
			q.probe.Observe(md)
			if err := msg.DoubleAck(t.Context()); err != nil {
				t.Fatalf("DoubleAck of stream seq %d: %v", md.Sequence.Stream, err)
			}
			got++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("Fetch(%d): %v", n-before, err)
		}
		if got == before {
			t.Fatalf("Take(%d): fetched %d, then none in 2s", n, got)
		}
	}
}

func (q *suiteQueue) Probe() pacer.Probe { return q.probe }

func TestProbePassesTheProbeSuite(t *testing.T) {
	url := natsServer(t).URL()
	testutil.TestProbe(t, func(t *testing.T) testutil.ProbeQueue {
		f := newFixture(t, url, jetstream.ConsumerConfig{})
		return &suiteQueue{f: f, probe: natspacer.NewProbe(f.cons)}
	}, testutil.ProbeFeatures{
		// Probe reports an age only on the first read after a delivery
		// (the age of the message delivered last); reads from
		// Consumer.Info, which cannot tell the age, report zero. So the
		// age of a job that waits undelivered does not grow from read to
		// read.
		OldestAge: false,
	})
}
