package main_test

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/testenv"
)

// Core NATS to an http sink: jobs run at the pace, and SIGTERM drains the
// buffer at the pace instead of dropping it (core NATS cannot take a job
// back).
func TestCoreNATSToHTTPDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	nats := testenv.NATS(t)
	srv, got := httpSink(t, nil)
	subj := testenv.UniqueName(t) + ".job"
	p := startRun(t, t.TempDir(), fmt.Sprintf(`
status_every = "0s"
[nats]
url = %q
[[worker]]
name = "core"
rate = 20
[worker.source]
kind = "nats"
subject = %q
buffer = 1000
[worker.sink]
kind = "http"
url = %q
`, nats.URL(), subj, srv.URL))
	const n = 120
	if o, code := pacer(t, "publish", "--nats", nats.URL(), "--subject", subj, "-n", strconv.Itoa(n)); code != 0 {
		t.Fatalf("pacer publish: exit %d: %s", code, o)
	}
	var times []time.Time
	testenv.WaitFor(t, 30*time.Second, "the first jobs", func() bool { times, _ = got.snapshot(); return len(times) >= 5 })
	from := times[0].Add(time.Second)
	time.Sleep(time.Until(from.Add(3*time.Second + 300*time.Millisecond)))
	times, _ = got.snapshot()
	within(t, "core nats jobs in 3 s at rate 20", in(times, from, 3*time.Second), 60, 0.05)

	st := p.status().Workers[0]
	if st.Dropped != 0 {
		t.Fatalf("status shows %d dropped with a buffer of 1000", st.Dropped)
	}
	_, ids := got.snapshot()
	t.Logf("SIGTERM with %d of %d handled; the rest is buffered", len(ids), n)
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("pacer run did not stop within 20 s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	_, ids = got.snapshot()
	if len(ids) != n {
		t.Errorf("%d distinct jobs reached the sink, want all %d: the drain runs the buffer", len(ids), n)
	}
}
