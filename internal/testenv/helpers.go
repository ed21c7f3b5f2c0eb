package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// PollEvery is how often WaitFor checks its condition.
const PollEvery = 10 * time.Millisecond

// WaitFor checks cond every PollEvery until it holds, and fails t (naming
// what it waited for) if it does not hold within timeout. It is for
// conditions a test cannot get an event for: a server's state, another
// process's output. It is never a way to wait out time before asserting
// that something did not happen.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("gave up after %v waiting for %s", timeout, what)
	}
}

// Eventually checks cond every PollEvery until it holds or timeout passes,
// and reports whether it held.
func Eventually(timeout time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-deadline.C:
			return cond()
		}
	}
}

// NewPacer returns a pacer.Pacer for c, closed when t's cleanup runs, or
// fails t.
func NewPacer(t testing.TB, c pacer.Config) *pacer.Pacer {
	t.Helper()
	p, err := pacer.New(c)
	if err != nil {
		t.Fatalf("pacer.New(%+v): %v", c, err)
	}
	t.Cleanup(p.Close)
	return p
}

var notName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// UniqueName returns a name no other test uses, made of t's name and 8
// random hex digits, in letters, digits and underscores only: a valid
// Redis key, Asynq queue, NATS stream or consumer name on a shared server.
func UniqueName(t testing.TB) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := notName.ReplaceAllString(t.Name(), "_")
	if len(name) > 200 {
		name = name[:200]
	}
	return name + "_" + hex.EncodeToString(r[:])
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o600) }
