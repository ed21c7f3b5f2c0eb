package sources

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// A stream deleted and made again starts its sequences at 1 again; the
// http sink's downstream, de-duplicating on Idempotency-Key, must not take
// the new stream's jobs for the old one's (the key was the bare sequence).
// A message with its own Nats-Msg-Id keeps that id.
func TestJobIDsDistinctAcrossARecreatedStream(t *testing.T) {
	t.Parallel()
	ns := testenv.NATS(t)
	js := testenv.JetStream(t, ns.URL())
	b := brokers.New(config.Redis{}, config.NATS{URL: ns.URL()}, nil)
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	keys := map[string]int{} // Idempotency-Key → requests
	arrived := make(chan struct{}, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		keys[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		arrived <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	hs, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	name := strings.ToUpper(testenv.UniqueName(t))
	subject := strings.ToLower(name) + ".job"
	s := &jetStreamSource{cfg: JetStreamConfig{Stream: name, Subjects: []string{strings.ToLower(name) + ".>"},
		Durable: "pacer-test", AckWait: 30 * time.Second, Retention: "workqueue"}}
	s.UseBrokers(b)
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	p := testenv.NewPacer(t, pacer.Config{Rate: 1000})

	// run connects (making the stream when it is missing, as after a
	// restart of the worker), publishes n jobs, and runs the source until
	// the downstream has had them.
	run := func(n int, msgID string) {
		t.Helper()
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := s.Produce(ctx, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if msgID != "" {
			m := nats.NewMsg(subject)
			m.Header.Set("Nats-Msg-Id", msgID)
			m.Data = []byte("x")
			if _, err := s.js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			n++
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- s.Run(rctx, plugin.Env{Worker: "hooks", Pacer: p, Log: slog.New(slog.DiscardHandler),
				DrainTimeout: 5 * time.Second, MaxInFlight: 4,
				Handle: func(j sink.Job) error { return hs.Handle(rctx, j) }})
		}()
		for range n {
			select {
			case <-arrived:
			case <-ctx.Done():
				t.Fatalf("the downstream had fewer than %d jobs in 30s", n)
			}
		}
		stop()
		if err := <-done; err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "context canceled") {
			t.Fatalf("Run: %v", err)
		}
	}
	run(5, "")
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	run(5, "order-42") // sequences 1..5 again, and a 6th with an id of its own

	mu.Lock()
	defer mu.Unlock()
	jsID := regexp.MustCompile(`^` + name + `:[0-9]+:[1-5]$`)
	var ours int
	for k, n := range keys {
		if n != 1 {
			t.Errorf("Idempotency-Key %q sent %d times, want once", k, n)
		}
		if jsID.MatchString(k) {
			ours++
		}
	}
	if len(keys) != 11 || ours != 10 || keys["order-42"] != 1 {
		t.Errorf("Idempotency-Keys %v: want 11 distinct, 10 of them %s:<created>:<1..5>, and order-42 (the message's Nats-Msg-Id)", keys, name)
	}
}
