package testenv_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/internal/testenv"
)

func TestNATSAnswers(t *testing.T) {
	s := testenv.NATS(t)
	if err := testenv.PingNATS(s.URL(), 2*time.Second); err != nil {
		t.Fatalf("PingNATS(%q) = %v, want nil", s.URL(), err)
	}
}

func TestNATSEmbeddedRestartKeepsURLAndStream(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs after the server's cleanup
	s := testenv.NATSEmbedded(t)
	if !s.Embedded() {
		t.Fatalf("NATSEmbedded().Embedded() = false, want true")
	}
	url := s.URL()

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("nats.Connect(%q): %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESTART", Subjects: []string{"restart.>"}}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "restart.x", []byte{byte(i)}); err != nil {
			t.Fatalf("Publish #%d: %v", i, err)
		}
	}

	s.Stop()
	if err := testenv.PingNATS(url, 200*time.Millisecond); err == nil {
		t.Fatalf("PingNATS(%q) after Stop = nil, want an error", url)
	}
	s.Stop() // a second Stop does nothing
	s.Start()
	if got := s.URL(); got != url {
		t.Fatalf("URL() after Start = %q, want %q (same port)", got, url)
	}
	s.Restart()

	// The client reconnects by itself, and the stream and its messages are
	// still there.
	testenv.WaitFor(t, 10*time.Second, "the client to reconnect to "+url, nc.IsConnected)
	var info *jetstream.StreamInfo
	if !testenv.Eventually(10*time.Second, func() bool {
		var st jetstream.Stream
		if st, err = js.Stream(ctx, "RESTART"); err == nil {
			info, err = st.Info(ctx)
		}
		return err == nil
	}) {
		t.Fatalf("stream RESTART after restart: %v", err)
	}
	if got, want := info.State.Msgs, uint64(10); got != want {
		t.Fatalf("stream RESTART holds %d messages after restart, want %d", got, want)
	}
	nc.Close()
}

func TestNATSExternalCannotRestart(t *testing.T) {
	url := testenv.NATSEmbedded(t).URL()
	t.Setenv("NATS_URL", url)
	s := testenv.NATS(t)
	if s.Embedded() {
		t.Fatalf("NATS() with NATS_URL set: Embedded() = true, want false")
	}
	if got := s.URL(); got != url {
		t.Fatalf("NATS().URL() = %q, want NATS_URL %q", got, url)
	}
	r := run(t, func(tb testing.TB) { testenv.NATS(tb).Restart() })
	if !r.skipped || !strings.Contains(r.msg, "NATSEmbedded") {
		t.Fatalf("Restart on an external server: skipped = %v, message %q; want a skip naming NATSEmbedded", r.skipped, r.msg)
	}
}

func TestNATSUnreachableURL(t *testing.T) {
	t.Setenv("NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("CI", "")
	if r := run(t, func(tb testing.TB) { testenv.NATS(tb) }); !r.skipped || !strings.Contains(r.msg, "NATS_URL") {
		t.Fatalf("NATS with an unreachable NATS_URL: skipped = %v, message %q; want a skip saying how to get a server", r.skipped, r.msg)
	}
	t.Setenv("CI", "true")
	if r := run(t, func(tb testing.TB) { testenv.NATS(tb) }); !r.failed {
		t.Fatalf("NATS with an unreachable NATS_URL under CI=true did not fail")
	}
}

// Deleting a server's last stream and creating another at once is what a
// test's cleanup and the next test do: nats-server removes the emptied
// streams directory in a goroutine of its own, and the new stream must not
// lose that race ("error creating store for stream", one full run in a
// few, before the embedded server kept the directory).
func TestNATSEmbeddedStreamAfterTheLastOneIsDeleted(t *testing.T) {
	t.Parallel()
	s := testenv.NATSEmbedded(t)
	js := testenv.JetStream(t, s.URL())
	ctx := t.Context()
	for i := range 200 {
		name := fmt.Sprintf("AGAIN_%d", i)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name)}}); err != nil {
			t.Fatalf("CreateStream #%d, right after the last stream was deleted: %v", i, err)
		}
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Fatalf("DeleteStream #%d: %v", i, err)
		}
	}
}
