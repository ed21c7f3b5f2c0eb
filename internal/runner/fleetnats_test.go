package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/internal/testenv"
)

const natsFleetConfig = `
admin = ""
status_every = "0s"
[nats]
url = %q

[fleet.mail]
store = "nats"
kv_bucket = %q
rate = 100
expected_workers = 2

[[worker]]
name = "%[3]s_a"
fleet = "mail"
[worker.source]
kind = "loop"
[worker.sink]
kind = "count"

[[worker]]
name = "%[3]s_b"
fleet = "mail"
[worker.source]
kind = "loop"
[worker.sink]
kind = "count"
`

// A [fleet.NAME] with store = "nats" is held in a JetStream key-value
// bucket on [nats] (created if missing): its workers share its rate, and
// /status names the store and the mode.
func TestFleetOnNATS(t *testing.T) {
	srv := testenv.NATS(t)
	kvName := strings.ReplaceAll(testenv.UniqueName(t), ".", "_")
	js := testenv.JetStream(t, srv.URL())
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), kvName) })
	path := filepath.Join(t.TempDir(), "config.toml")
	p := "natsfleet"
	if err := os.WriteFile(path, fmt.Appendf(nil, natsFleetConfig, srv.URL(), kvName, p), 0o644); err != nil {
		t.Fatal(err)
	}
	r, logs := startRunner(t, path)
	a, b := handledBy(p+"_a"), handledBy(p+"_b")
	for _, c := range []*counter{a, b} {
		select {
		case <-c.tenth:
		case <-time.After(10 * time.Second):
			t.Fatalf("the fleet's workers did not handle 10 jobs each in 10s: %+v\n%s", r.Status().Workers, logs)
		}
	}
	n0, t0 := a.n.Load()+b.n.Load(), time.Now()
	time.Sleep(2 * time.Second)
	n1, el := a.n.Load()+b.n.Load(), time.Since(t0)
	got := float64(n1-n0) / el.Seconds()
	t.Logf("%d jobs in %v: %.1f/s (fleet rate 100/s)", n1-n0, el, got)
	if got < 90 || got > 105 {
		t.Errorf("two workers of a 100/s fleet on NATS ran %.1f jobs/s, want 90–105", got)
	}
	st := r.Status()
	if len(st.Fleets) != 1 {
		t.Fatalf("status has %d fleets, want 1", len(st.Fleets))
	}
	fs := st.Fleets[0]
	if fs.Store != "nats" || fs.Mode != "nats" || fs.Rate != 100 || fs.Processes != 1 || fs.Share != 50 {
		t.Errorf("fleet status = %+v, want store nats, mode nats, rate 100, 1 process, share 50", fs)
	}
	if _, err := js.KeyValue(context.Background(), kvName); err != nil {
		t.Errorf("key-value bucket %q: %v, want it created by the run", kvName, err)
	}
	var table strings.Builder
	status.WriteTable(&table, "here", st)
	t.Logf("status:\n%s", table.String())
}
