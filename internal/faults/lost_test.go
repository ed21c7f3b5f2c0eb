package faults

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/internal/testenv"
)

// The three ways a job was lost (issue: "Three ways to lose a job"):
// each test counts at the receiving HTTP server, on servers of its own.

// A stream deleted and made again while pacer runs starts its sequences
// at 1 again: nothing pacer remembered of the old stream (its ack floor,
// the jobs it settled) may make it ack a job of the new one without
// running it, nor make the new consumer start past the new stream's
// first job. With either retention.
func TestRecreatedStreamLosesNothing(t *testing.T) {
	t.Parallel()
	for _, retention := range []string{"workqueue", "limits"} {
		t.Run(retention, func(t *testing.T) {
			t.Parallel()
			ns := testenv.NATSEmbedded(t)
			c := newCounter(t, nil)
			stream, subject := streamName(t)
			cfg := jetStreamConfigWith(t, "", ns.URL(), stream, c.url(), fmt.Sprintf("retention = %q\nmax_age = \"1h\"", retention))
			p := startPacer(t, nil, cfg, "run")
			p.waitLog(30*time.Second, "stream created")
			js := testenv.JetStream(t, ns.URL())
			first := jobs(t, 50)
			publishOnly(t, js, subject, first)
			c.waitAll(allTime, first)
			ctx := context.Background()
			testenv.WaitFor(t, allTime, "the consumer's ack floor at 50", func() bool {
				info, err := js.Consumer(ctx, stream, "pacer-w")
				return err == nil && info.CachedInfo().AckFloor.Stream == 50
			})
			// The worker idles a few of its 1s periods, as a user's
			// would: its probe reads the consumer's Info, ack floor 50.
			time.Sleep(3 * time.Second)

			if err := js.DeleteStream(ctx, stream); err != nil {
				t.Fatal(err)
			}
			p.waitLog(30*time.Second, "worker down")
			p.waitLog(30*time.Second, "worker recovered")
			if _, err := js.Stream(ctx, stream); err != nil {
				t.Fatalf("the stream after the worker recovered: %v", err)
			}
			// Sequences 1–50 of the new stream: the old one's were too.
			second := jobs(t, 50)
			publishOnly(t, js, subject, second)
			all := append(first, second...)
			c.waitAll(allTime, all)
			c.report("JetStream stream deleted and made again ("+retention+")", all)
			if distinct, deliveries := c.received(); deliveries != distinct {
				t.Errorf("%d deliveries of %d jobs: want each once", deliveries, distinct)
			}
			p.stop()
		})
	}
}

// publishOnly publishes each job on subject, to a stream that exists.
func publishOnly(t *testing.T, js jetstream.JetStream, subject string, jobs []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, j := range jobs {
		if _, err := js.Publish(ctx, subject, []byte(j)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// A consumer with max_deliver = 3 and a downstream that answers 429 to
// the first three attempts of every job: throttling alone must not use
// up a job's deliveries (each throttle was a NakWithDelay, which the
// server counts as one: every job was dropped after its third 429).
func TestThrottlingKeepsMaxDeliver(t *testing.T) {
	t.Parallel()
	ns := testenv.NATSEmbedded(t)
	c := newCounter(t, func(_ string, attempt int) int {
		if attempt <= 3 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	stream, subject := streamName(t)
	cfg := jetStreamConfigWith(t, "", ns.URL(), stream, c.url(), "max_deliver = 3")
	p := startPacer(t, nil, cfg, "run")
	p.waitLog(30*time.Second, "stream created")
	sent := jobs(t, 10)
	publishOnly(t, testenv.JetStream(t, ns.URL()), subject, sent)
	c.waitAll(allTime, sent)
	c.report("429 to each job's first 3 attempts, max_deliver = 3 (jetstream → http)", sent)
	p.stop()
}

// Tasks with no retries left (max_retry 0, as another producer may
// enqueue them), half of them with a 1 s timeout that the pace cannot
// make, and a downstream that answers 429 to every job's first attempt:
// Asynq archives a task on its first error of any kind once its retries
// are spent, a rate limit included. None may be archived: each comes back
// as a copy, and every job is received.
func TestThrottledAsynqTasksAreNotArchived(t *testing.T) {
	t.Parallel()
	redis := testenv.RedisProcess(t)
	c := newCounter(t, func(_ string, attempt int) int {
		if attempt == 1 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	queue := testenv.UniqueName(t)
	sent := jobs(t, 10)
	cl := asynq.NewClient(asynq.RedisClientOpt{Addr: redis.Addr()})
	for i, j := range sent {
		opts := []asynq.Option{asynq.Queue(queue), asynq.MaxRetry(0)}
		if i%2 == 0 {
			opts = append(opts, asynq.Timeout(time.Second))
		}
		if _, err := cl.Enqueue(asynq.NewTask("job", []byte(j)), opts...); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	cfg := writeConfig(t, `
admin = ""
status_every = "0s"
drain_timeout = %q
[redis]
addr = %q
[[worker]]
name = "w"
rate = 4
max_in_flight = 16
[worker.source]
kind = "asynq"
queue = %q
[worker.sink]
kind = "http"
url = %q
timeout = "1s"
`, drain.String(), redis.Addr(), queue, c.url())
	p := startPacer(t, nil, cfg, "run")
	defer p.stop()
	in := asynq.NewInspector(asynq.RedisClientOpt{Addr: redis.Addr()})
	defer in.Close()
	archived := func() int {
		info, err := in.GetQueueInfo(queue)
		if err != nil {
			return 0
		}
		return info.Archived
	}
	if !testenv.Eventually(allTime, func() bool { d, _ := c.received(); return d == len(sent) || d+archived() >= len(sent) }) {
		d, _ := c.received()
		t.Fatalf("after %v: %d received, %d archived, of %d", allTime, d, archived(), len(sent))
	}
	t.Logf("faults: asynq tasks with max_retry 0 throttled: %d archived", archived())
	c.report("429 to each job's first attempt, tasks with max_retry 0, half with a 1s timeout (asynq → http)", sent)
	if n := archived(); n != 0 {
		t.Errorf("%d tasks archived, want 0", n)
	}
}
