package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/testenv"
)

// A job command that starts a daemon and exits leaves nothing running:
// the exec sink kills the job's process group once the job is done, so
// nothing a job started is left when pacer run exits after SIGTERM
// (issue 19: sh -c 'sleep 300 & echo started; exit 0', 10 jobs, SIGTERM:
// 10 sleeps left, reparented to PID 1).
func TestNoDaemonOutlivesItsJob(t *testing.T) {
	t.Parallel()
	const n = 10
	dir := t.TempDir()
	ns := testenv.NATSEmbedded(t)
	stream, subject := streamName(t)
	cfg := writeConfig(t, `admin = ""
status_every = "0s"
[nats]
url = %q
[[worker]]
name = "w"
rate = 50
[worker.source]
kind = "jetstream"
stream = %q
[worker.sink]
kind = "exec"
command = ["sh", "-c", 'sleep 300 & echo $! >> "$D/pids"; echo started; exit 0']
env = ["D=%s"]
`, ns.URL(), stream, dir)
	publish(t, ns.URL(), stream, subject, jobs(t, n))
	p := startPacer(t, nil, cfg, "run")
	var pids []int
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL) // left by a failed run
		}
	})
	testenv.WaitFor(t, 60*time.Second, fmt.Sprintf("%d jobs to start their daemon", n), func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "pids"))
		pids = pids[:0]
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return len(pids) >= n
	})
	// Each job's daemon goes when its job is done, while pacer runs (a
	// bound, not a wait: they are killed as each job ends).
	testenv.Eventually(20*time.Second, func() bool { return len(living(pids)) == 0 })
	afterJobs := living(pids)
	took := p.stop()
	left := living(pids)
	t.Logf("faults: daemons (jetstream → exec): %d jobs each left a sleep 300 behind: %d running after the jobs, %d after SIGTERM (exit %v)",
		len(pids), len(afterJobs), len(left), took.Round(10*time.Millisecond))
	if len(afterJobs) > 0 {
		t.Errorf("%d of the jobs' daemons outlived their job: %v", len(afterJobs), afterJobs)
	}
	if len(left) > 0 {
		t.Fatalf("%d of the jobs' daemons outlived pacer run: %v", len(left), left)
	}
}

// living returns the pids of pids that are running (not zombies).
func living(pids []int) []int {
	var l []int
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
			continue // exited, not yet reaped
		}
		l = append(l, pid)
	}
	return l
}
