package sources

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// A stream pacer creates has the retention of its source's table; a
// stream that exists is never changed.
func TestJetStreamRetention(t *testing.T) {
	t.Parallel()
	srv := testenv.NATS(t)
	b := brokers.New(config.Redis{}, config.NATS{URL: srv.URL()}, nil)
	t.Cleanup(b.Close)
	js := testenv.JetStream(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	connect := func(t *testing.T, c JetStreamConfig) jetstream.StreamConfig {
		t.Helper()
		c.Subjects = []string{strings.ToLower(c.Stream) + ".>"}
		c.Durable, c.AckWait = "pacer-test", 30*time.Second
		s := &jetStreamSource{cfg: c}
		s.UseBrokers(b)
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, c.Stream)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = js.DeleteStream(context.Background(), c.Stream) })
		return st.CachedInfo().Config
	}
	t.Run("work-queue by default", func(t *testing.T) {
		sc := connect(t, JetStreamConfig{Stream: strings.ToUpper(testenv.UniqueName(t)), Retention: "workqueue"})
		if sc.Retention != jetstream.WorkQueuePolicy || sc.MaxAge != 0 {
			t.Errorf("created stream: retention %v, max_age %v; want workqueue, 0", sc.Retention, sc.MaxAge)
		}
	})
	t.Run("limits with max_age", func(t *testing.T) {
		sc := connect(t, JetStreamConfig{Stream: strings.ToUpper(testenv.UniqueName(t)), Retention: "limits", MaxAge: time.Hour})
		if sc.Retention != jetstream.LimitsPolicy || sc.MaxAge != time.Hour {
			t.Errorf("created stream: retention %v, max_age %v; want limits, 1h", sc.Retention, sc.MaxAge)
		}
	})
	t.Run("a stream pacer did not create is not changed", func(t *testing.T) {
		name := strings.ToUpper(testenv.UniqueName(t))
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name) + ".>"},
			Retention: jetstream.LimitsPolicy, MaxAge: 2 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		sc := connect(t, JetStreamConfig{Stream: name, Retention: "workqueue"})
		if sc.Retention != jetstream.LimitsPolicy || sc.MaxAge != 2*time.Hour {
			t.Errorf("existing stream after Connect: retention %v, max_age %v; want it unchanged: limits, 2h", sc.Retention, sc.MaxAge)
		}
	})
}

// The runner's supervisor calls Connect again after a source failed,
// while the demo producer goes on calling Produce on the same source:
// the reconnect must not write what Produce reads.
func TestReconnectWhileProducing(t *testing.T) {
	t.Parallel()
	srv := testenv.NATS(t)
	b := brokers.New(config.Redis{}, config.NATS{URL: srv.URL()}, nil)
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := strings.ToUpper(testenv.UniqueName(t))
	js := &jetStreamSource{cfg: JetStreamConfig{Stream: name, Subjects: []string{strings.ToLower(name) + ".>"},
		Durable: "pacer-test", AckWait: 30 * time.Second, Retention: "limits"}}
	core := &natsSource{cfg: NATSConfig{Subject: strings.ToLower(name) + ".core"}}
	for _, s := range []interface {
		Connect(context.Context) (pacer.Probe, error)
		Produce(context.Context, []byte) error
		UseBrokers(*brokers.Brokers)
	}{js, core} {
		s.UseBrokers(b)
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Produce(ctx, []byte("x")) }()
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
