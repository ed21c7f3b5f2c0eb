package natspacer_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/pacer"
)

// The tests of Consume against real servers live in the repository's
// internal/adaptertest/natspacer, in the module of the CLI, beside the test
// servers they start; this one stays here because it needs the hooks of
// export_test.go. It uses the NATS server at NATS_URL (default
// nats.DefaultURL), with JetStream, and a stream of its own.

// sharedJetStream connects to NATS_URL or nats.DefaultURL; with no server
// there it skips t, or fails it under CI=true.
func sharedJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no NATS server at %s: %v (CI=true, so this fails instead of skipping; start nats-server -js)", url, err)
		}
		t.Skipf("no NATS server at %s: %v; start nats-server -js or set NATS_URL", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

// TestNoProgressAfterNak: an InProgress that the supervisor decided to
// send while the handler was finishing goes out before the nak, never
// after it: a late one would restart the AckWait, holding the message for
// AckWait instead of the nak's delay. The progress hook holds the first
// InProgress, after the check that the message is unfinished, lets the
// handler return its error, and waits for the event that the handler has
// returned and its outcome is about to be set (the outcome hook); the
// outcome must still wait for the InProgress. (nats.go refuses InProgress
// on a message it has seen nakked, but checks before it publishes: only a
// lock around both closes the window.)
func TestNoProgressAfterNak(t *testing.T) {
	const ackWait, backoff = 4 * time.Second, 100 * time.Millisecond
	js := sharedJetStream(t)
	ctx := t.Context()
	name := fmt.Sprintf("natspacer_hooks_%d", time.Now().UnixNano())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name}}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	cons, err := js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "worker", AckWait: ackWait})
	if err != nil {
		t.Fatalf("CreateOrUpdateConsumer: %v", err)
	}
	if _, err := js.Publish(ctx, name, []byte("0")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	p, err := pacer.New(pacer.Config{Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	touching, returned := make(chan struct{}), make(chan struct{})
	var hooked, outcomes, sawDone atomic.Int64
	hook := func(done func() bool) {
		if hooked.Add(1) != 1 {
			return
		}
		close(touching) // the handler returns its error now
		select {
		case <-returned: // the handler returned; its outcome waits for this InProgress
		case <-time.After(5 * time.Second):
			t.Error("the handler did not return within 5s")
		}
		if done() {
			sawDone.Add(1)
		}
	}
	outcome := func() {
		if outcomes.Add(1) == 1 {
			close(returned)
		}
	}
	var mu sync.Mutex
	var starts []time.Time
	acked := make(chan struct{})
	h := natspacer.HandlerFunc(func(ctx context.Context, msg jetstream.Msg) error {
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		if md.NumDelivered > 1 {
			close(acked)
			return nil
		}
		select {
		case <-touching:
		case <-time.After(5 * time.Second):
		}
		return fmt.Errorf("fail the first delivery")
	})
	c, err := natspacer.Consume(ctx, cons, p, h, natspacer.ProgressEvery(50*time.Millisecond),
		natspacer.Backoff(func(uint64) time.Duration { return backoff }), natspacer.ProgressHook(hook),
		natspacer.OutcomeHook(outcome))
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	defer func() { c.Stop(); _ = c.Wait() }()
	select {
	case <-acked:
	case <-time.After(3 * ackWait):
		t.Fatalf("the message was not handled again within %v; stats %+v", 3*ackWait, c.Stats())
	}
	mu.Lock()
	again := starts[1].Sub(starts[0])
	mu.Unlock()
	t.Logf("nakked with delay %v, AckWait %v: handled again after %v; InProgress sent after the outcome: %d; stats %+v",
		backoff, ackWait, again.Round(time.Millisecond), sawDone.Load(), c.Stats())
	if hooked.Load() == 0 {
		t.Fatal("no InProgress was about to be sent: the test proves nothing")
	}
	if sawDone.Load() != 0 {
		t.Errorf("an InProgress went out after the message's outcome was set")
	}
	if again > ackWait/2 {
		t.Errorf("the nakked message came back after %v, want about %v: a late InProgress restarted its AckWait (%v)",
			again, backoff, ackWait)
	}
}
