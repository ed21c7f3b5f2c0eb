package fleettest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/pacer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// member is one worker of a fleet: its own connection and Bucket, a pacer
// on it, and two goroutines that keep it backlogged, counting dispatches
// in bins of wall-clock time from start.
type member struct {
	nc   *nats.Conn
	b    *natsbucket.Bucket
	p    *pacer.Pacer
	bins []atomic.Int64
}

type fleetRun struct {
	start time.Time
	bin   time.Duration
	ms    []*member
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

func connect(t *testing.T, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(time.Second))
	if err != nil {
		t.Fatalf("nats.Connect(%s): %v", urls, err)
	}
	return nc
}

// runFleet starts n members on the key-value bucket kvName at urls, each
// with its own connection (connecting to urls[i % len] first), sharing
// rate; they run for dur.
func runFleet(t *testing.T, urls []string, kvName string, n int, rate float64, dur, bin time.Duration, log *slog.Logger) *fleetRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	r := &fleetRun{bin: bin, stop: cancel}
	for i := range n {
		order := append(append([]string{}, urls[i%len(urls):]...), urls[:i%len(urls)]...)
		nc := connect(t, strings.Join(order, ","))
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := js.KeyValue(context.Background(), kvName)
		if err != nil {
			t.Fatalf("KeyValue(%s): %v", kvName, err)
		}
		b, err := natsbucket.New(kv, natsbucket.Config{Key: "fleet", Rate: rate, ExpectedWorkers: n,
			RetryInterval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		p, err := pacer.New(pacer.Config{Rate: rate, Limiter: b})
		if err != nil {
			t.Fatal(err)
		}
		r.ms = append(r.ms, &member{nc: nc, b: b, p: p, bins: make([]atomic.Int64, int(dur/bin)+1)})
	}
	r.start = time.Now()
	for _, m := range r.ms {
		for range 2 {
			r.wg.Go(func() {
				for {
					pm, err := m.p.Acquire(ctx, 1)
					if err != nil {
						return
					}
					if i := int(time.Since(r.start) / bin); i < len(m.bins) {
						m.bins[i].Add(1)
					}
					pm.Done(nil)
				}
			})
		}
	}
	return r
}

// wait waits for the run's end and closes every member.
func (r *fleetRun) wait() {
	r.wg.Wait()
	r.stop()
	for _, m := range r.ms {
		m.p.Close()
		m.b.Close()
		m.nc.Close()
	}
}

// total is the fleet's dispatches in bins [from, to).
func (r *fleetRun) total(from, to int) int64 {
	var n int64
	for _, m := range r.ms {
		for i := from; i < to && i < len(m.bins); i++ {
			n += m.bins[i].Load()
		}
	}
	return n
}

// of is member i's dispatches in bins [from, to).
func (r *fleetRun) of(i, from, to int) int64 {
	var n int64
	for j := from; j < to; j++ {
		n += r.ms[i].bins[j].Load()
	}
	return n
}
