package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/plugin"
	_ "github.com/jobpacer/pacer/internal/sinks" // the log sink of the configs below
	"github.com/jobpacer/pacer/internal/testenv"
)

// loadSource writes a config of one worker named name whose source table
// is source, loads it as pacer check does, and returns the error.
func loadSource(t *testing.T, name, source string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	cfg := fmt.Sprintf("[[worker]]\nname = %q\nrate = 10\n[worker.source]\n%s\n[worker.sink]\nkind = \"log\"\n", name, source)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := plugin.Load(path)
	return err
}

// pacer check refuses every name and subject that pacer run's Connect
// refuses (issue 19: a worker named "my.worker" passed check, and run
// refused its consumer "pacer-my.worker"). Each row is shown to fail at
// Connect on a real nats-server with the settings check would have made,
// and to be refused by check with an error naming the key and the value.
func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	t.Parallel()
	srv := testenv.NATS(t)
	b := brokers.New(config.Redis{}, config.NATS{URL: srv.URL()}, nil)
	t.Cleanup(b.Close)
	stream := strings.ToUpper(testenv.UniqueName(t))
	subj := strings.ToLower(stream)
	js := JetStreamConfig{Stream: stream, Subjects: []string{subj + ".>"}, Durable: "pacer-w", AckWait: 30 * time.Second, Retention: "workqueue"}
	tests := []struct {
		name   string
		worker string
		source string                   // the [worker.source] table
		run    func(c *JetStreamConfig) // the same setting as run would get it; nil: a core nats source
		core   *NATSConfig              // a core nats source's settings, for run
		want   []string                 // in check's message
	}{
		{name: "a dot in the worker's name", worker: "my.worker", source: fmt.Sprintf("kind = \"jetstream\"\nstream = %q", stream),
			run: func(c *JetStreamConfig) { c.Durable = "pacer-my.worker" }, want: []string{"durable", `"pacer-my.worker"`, "rename the worker"}},
		{name: "a space in the worker's name", worker: "my worker", source: fmt.Sprintf("kind = \"jetstream\"\nstream = %q", stream),
			run: func(c *JetStreamConfig) { c.Durable = "pacer-my worker" }, want: []string{"durable", `"pacer-my worker"`}},
		{name: "a slash in durable", worker: "w", source: fmt.Sprintf("kind = \"jetstream\"\nstream = %q\ndurable = \"a/b\"", stream),
			run: func(c *JetStreamConfig) { c.Durable = "a/b" }, want: []string{"durable", `"a/b"`, "'/'"}},
		{name: "a durable too long", worker: "w", source: fmt.Sprintf("kind = \"jetstream\"\nstream = %q\ndurable = %q", stream, strings.Repeat("d", 256)),
			run: func(c *JetStreamConfig) { c.Durable = strings.Repeat("d", 256) }, want: []string{"durable", "at most 255 bytes"}},
		{name: "a backslash in the stream", worker: "w", source: "kind = \"jetstream\"\nstream = 'A\\B'",
			run: func(c *JetStreamConfig) { c.Stream, c.Subjects = `A\B`, []string{subj + ".bs.>"} }, want: []string{"stream", `"A\\B"`}},
		{name: "a space in filter_subject", worker: "w", source: fmt.Sprintf("kind = \"jetstream\"\nstream = %q\nfilter_subject = \"%s.a b\"", stream, subj),
			run: func(c *JetStreamConfig) { c.FilterSubject = subj + ".a b" }, want: []string{"filter_subject", "white space"}},
		{name: "an empty token in subjects", worker: "w", source: fmt.Sprintf("kind = \"jetstream\"\nstream = \"%s_E\"\nsubjects = [\"%s..x\"]", stream, subj),
			run: func(c *JetStreamConfig) { c.Stream, c.Subjects = stream+"_E", []string{subj + "..x"} }, want: []string{"subjects", "none empty"}},
		{name: "'>' before the last token in subjects", worker: "w", source: fmt.Sprintf("kind = \"jetstream\"\nstream = \"%s_G\"\nsubjects = [\"%s.>.x\"]", stream, subj),
			run: func(c *JetStreamConfig) { c.Stream, c.Subjects = stream+"_G", []string{subj + ".>.x"} }, want: []string{"subjects", "'>' only as the last token"}},
		{name: "a space in a core subject", worker: "w", source: fmt.Sprintf("kind = \"nats\"\nsubject = \"%s.a b\"", subj),
			core: &NATSConfig{Subject: subj + ".a b", Queue: "pacer"}, want: []string{"subject", "white space"}},
		{name: "a space in a queue group", worker: "w", source: fmt.Sprintf("kind = \"nats\"\nsubject = \"%s.q\"\nqueue = \"a b\"", subj),
			core: &NATSConfig{Subject: subj + ".q", Queue: "a b"}, want: []string{"queue", `"a b"`}},
	}
	t.Cleanup(func() {
		for _, s := range []string{stream, stream + "_E", stream + "_G"} {
			_ = testenv.JetStream(t, srv.URL()).DeleteStream(context.Background(), s)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// run refuses it.
			var runErr error
			if tt.core != nil {
				runErr = runCore(ctx, t, b, *tt.core)
			} else {
				c := js
				tt.run(&c)
				s := &jetStreamSource{cfg: c}
				s.UseBrokers(b)
				_, runErr = s.Connect(ctx)
			}
			if runErr == nil {
				t.Fatal("run's Connect took it: this row shows nothing")
			}
			t.Logf("run: %v", runErr)
			// check refuses it too, naming the key and the value.
			err := loadSource(t, tt.worker, tt.source)
			if err == nil {
				t.Fatalf("check accepted what run refuses (%v)", runErr)
			}
			t.Logf("check: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("check's error %q does not say %q", err, w)
				}
			}
		})
	}
}

// runCore subscribes as a core nats source's Run does and returns the
// error.
func runCore(ctx context.Context, t *testing.T, b *brokers.Brokers, c NATSConfig) error {
	t.Helper()
	s := &natsSource{cfg: c}
	s.UseBrokers(b)
	if _, err := s.Connect(ctx); err != nil {
		return err
	}
	sub, err := s.nc.QueueSubscribe(c.Subject, c.Queue, func(*nats.Msg) {})
	if err == nil {
		_ = sub.Unsubscribe()
	}
	return err
}

// ack_wait is bounded: after a crash, the jobs the dead process held wait
// ack_wait to be delivered again (issue 19: "2562047h" was accepted, 292
// years).
func TestAckWaitBounded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ackWait string
		ok      bool
	}{{"1s", true}, {"30s", true}, {"1h", true}, {"1h0m1s", false}, {"24h", false}, {"2562047h", false}, {"500ms", false}} {
		err := loadSource(t, "w", fmt.Sprintf("kind = \"jetstream\"\nstream = \"JOBS\"\nack_wait = %q", tt.ackWait))
		switch {
		case tt.ok && err != nil:
			t.Errorf("ack_wait = %q: %v, want it accepted", tt.ackWait, err)
		case !tt.ok && err == nil:
			t.Errorf("ack_wait = %q accepted, want it refused", tt.ackWait)
		case !tt.ok && !(strings.Contains(err.Error(), "ack_wait") && strings.Contains(err.Error(), "want a duration in [1s, 1h0m0s]")):
			t.Errorf("ack_wait = %q: %q, want an error naming ack_wait, the value and [1s, 1h0m0s]", tt.ackWait, err)
		default:
			t.Logf("ack_wait = %q: %v", tt.ackWait, err)
		}
	}
}
