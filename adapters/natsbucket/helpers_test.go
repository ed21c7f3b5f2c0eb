package natsbucket_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/adapters/natsbucket"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerEnv); spec != "" {
		os.Exit(workerMain(spec))
	}
	goleak.VerifyTestMain(m)
}

// natsURL is the shared NATS the tests use: NATS_URL, by default
// nats://127.0.0.1:4222.
func natsURL() string {
	if u := os.Getenv("NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// connect connects to the shared NATS; without one the test is skipped,
// or fails under CI=true.
func connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no NATS at %s (set NATS_URL): %v", natsURL(), err)
		}
		t.Skipf("no NATS at %s (set NATS_URL): %v", natsURL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// uniqueName is a key-value bucket name no other test uses.
func uniqueName(t testing.TB) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	n := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return "test_" + n + "_" + hex.EncodeToString(r[:])
}

// newKV creates a key-value bucket of the test's own, deleted at cleanup.
func newKV(t testing.TB, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	name := uniqueName(t)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: name})
	if err != nil {
		t.Fatalf("CreateKeyValue(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), name) })
	return kv
}

func newBucket(t testing.TB, kv jetstream.KeyValue, c natsbucket.Config) *natsbucket.Bucket {
	t.Helper()
	b, err := natsbucket.New(kv, c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	t.Cleanup(b.Close)
	return b
}

// drain takes tokens n at a time until ctx ends and returns how many.
func drain(ctx context.Context, b *natsbucket.Bucket, n int) int64 {
	var got int64
	for b.Wait(ctx, n) == nil {
		got += int64(n)
	}
	return got
}
