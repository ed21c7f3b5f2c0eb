package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// ExecConfig configures an Exec sink (kind "exec" in config.toml).
type ExecConfig struct {
	// Command is the program and its arguments, run without a shell.
	// Required.
	Command []string `toml:"command"`
	// Dir is the working directory. The default value, "", is the
	// worker's.
	Dir string `toml:"dir"`
	// Env is the command's environment beyond what it always gets of
	// pacer's (PATH, HOME, LANG, LC_*, TZ, TMPDIR, USER, LOGNAME, SHELL)
	// and the PACER_JOB_* variables: NAME passes pacer's variable NAME,
	// NAME* every variable whose name starts with NAME, and KEY=VALUE sets
	// KEY. Nothing else of pacer's environment (REDIS_PASSWORD,
	// NATS_TOKEN, …) reaches the command.
	Env []string `toml:"env"`
	// Timeout ends a command that runs longer: pushback (a throttled
	// outcome, retried after the worker's default_retry_after), since
	// what the command calls is drowning. The default value is 1m.
	Timeout time.Duration `toml:"timeout"`
	// ThrottleExitCodes are the exit codes that mean "throttled, slow
	// down". The default value is [75] (EX_TEMPFAIL).
	ThrottleExitCodes []int `toml:"throttle_exit_codes"`
	// RetryAfter is the pause a throttled exit asks for; the command can
	// also ask for one with the last line of its stdout: "retry-after: 5s"
	// (a Go duration), "retry-after: 5" (whole seconds) or "retry-after:"
	// and an HTTP-date. A malformed line is ignored. The default value, 0,
	// leaves it to the worker's default_retry_after. It must not exceed
	// MaxRetryAfter.
	RetryAfter time.Duration `toml:"retry_after"`
	// MaxRetryAfter caps the pause a command's retry-after line asks for,
	// so that one answer cannot stall the worker for long: the pause
	// holds every job of the worker. The default value is 5m.
	MaxRetryAfter time.Duration `toml:"max_retry_after"`
}

// Exec is a Sink that runs a command per job: the payload on stdin, and
// PACER_JOB_ID, PACER_JOB_TYPE, PACER_JOB_ATTEMPT and PACER_WORKER in the
// environment. Exit 0 is success; an exit code in ThrottleExitCodes, or
// running past Timeout, is a throttled outcome (pushback: the pacer lowers
// the pace); any other exit is an error that carries the tail of the
// command's stderr.
//
// On unix the command runs in a process group of its own, and the whole
// group is killed (SIGKILL) when the job ends, whatever its outcome: once
// the command exits, or when it runs past Timeout or Handle's ctx ends.
// No background process a job started (a daemon, a shell's "cmd &")
// outlives its job, so none outlives pacer run. (A child that leaves the
// group, with setsid for one, escapes this.) A command that exits on its
// own but leaves a background process holding its stdout or stderr is
// judged by its exit status once that output has been waited for 1s;
// then the background process is killed with the group.
type Exec struct {
	cfg ExecConfig
}

var _ Sink = (*Exec)(nil)

// NewExec returns an Exec sink, or an error naming the bad setting.
func NewExec(c ExecConfig) (*Exec, error) {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return nil, invalid("exec", "command", fmt.Sprintf("%q", c.Command), `a program and its arguments, such as ["./handle.sh"]`)
	}
	if c.Timeout == 0 {
		c.Timeout = time.Minute
	}
	if c.Timeout < time.Millisecond {
		return nil, invalid("exec", "timeout", c.Timeout, `a duration ≥ 1ms with a unit, such as "30s"`)
	}
	if c.ThrottleExitCodes == nil {
		c.ThrottleExitCodes = []int{75}
	}
	for _, code := range c.ThrottleExitCodes {
		if code < 1 || code > 255 {
			return nil, invalid("exec", "throttle_exit_codes", code, "exit codes in [1, 255]")
		}
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = defaultMaxRetryAfter
	}
	if c.MaxRetryAfter < time.Millisecond {
		return nil, invalid("exec", "max_retry_after", c.MaxRetryAfter, `a duration ≥ 1ms with a unit, such as "5m"`)
	}
	if c.RetryAfter < 0 || c.RetryAfter > c.MaxRetryAfter {
		return nil, invalid("exec", "retry_after", c.RetryAfter, fmt.Sprintf("a duration in [0s, max_retry_after = %v]", c.MaxRetryAfter))
	}
	for _, kv := range c.Env {
		if !validEnvEntry(kv) {
			return nil, invalid("exec", "env", fmt.Sprintf("%q", kv), "NAME (passed from pacer's environment), NAME* or KEY=VALUE entries")
		}
	}
	prog := c.Command[0]
	if c.Dir != "" && strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		prog = filepath.Join(c.Dir, prog)
	}
	if _, err := exec.LookPath(prog); err != nil {
		why := "on $PATH"
		if strings.Contains(prog, "/") {
			why = "that exists and is executable"
		}
		return nil, invalid("exec", "command", fmt.Sprintf("%q", c.Command), fmt.Sprintf("a program %s (%q: %v)", why, prog, errors.Unwrap(err)))
	}
	return &Exec{cfg: c}, nil
}

// Handle runs the command for j and waits for it; running past Timeout or
// ctx ending kills it. On unix it kills the command's process group
// before it returns, in every case. It is safe for concurrent use.
func (e *Exec) Handle(ctx context.Context, j Job) error {
	if strings.ContainsRune(j.ID, 0) || strings.ContainsRune(j.Type, 0) {
		// The environment cannot hold a NUL: no retry can run this job.
		return permanent(fmt.Errorf("sink: exec %s: job %q of type %q: a NUL cannot be passed in the environment", e.cfg.Command[0], j.ID, j.Type))
	}
	tctx, cancel := context.WithTimeoutCause(ctx, e.cfg.Timeout, errTimedOut)
	defer cancel()
	cmd := exec.CommandContext(tctx, e.cfg.Command[0], e.cfg.Command[1:]...)
	cmd.Dir = e.cfg.Dir
	cmd.Env = jobEnv(os.Environ(), e.cfg.Env)
	cmd.Env = append(cmd.Env,
		"PACER_JOB_ID="+j.ID, "PACER_JOB_TYPE="+j.Type,
		"PACER_JOB_ATTEMPT="+strconv.Itoa(j.Attempt), "PACER_WORKER="+j.Worker)
	cmd.Stdin = bytes.NewReader(j.Payload)
	var stdout, stderr tail
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	killGroupOnCancel(cmd)
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	killGroup(cmd) // what the command left running in the background
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// It exited 0 on its own; a background child still holds its
		// output. Failing would run the job's side effects again.
		return nil
	}
	name := e.cfg.Command[0]
	if tctx.Err() != nil {
		if errors.Is(context.Cause(tctx), errTimedOut) {
			return pacer.Throttle(0, fmt.Errorf("sink: exec %s: job %s: timed out after %v: %w%s", name, j.ID, e.cfg.Timeout, context.DeadlineExceeded, stderr.suffix()))
		}
		return fmt.Errorf("sink: exec %s: job %s: canceled: %w", name, j.ID, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if slices.Contains(e.cfg.ThrottleExitCodes, code) {
			d, note := e.cfg.RetryAfter, ""
			if v, asked, ok := retryAfterLine(stdout.String(), time.Now()); ok {
				d, note = capRetryAfter(asked, e.cfg.MaxRetryAfter, v)
			}
			return pacer.Throttle(d, fmt.Errorf("sink: exec %s: job %s: exit %d%s%s", name, j.ID, code, note, stderr.suffix()))
		}
		return fmt.Errorf("sink: exec %s: job %s: exit %d%s", name, j.ID, code, stderr.suffix())
	}
	return fmt.Errorf("sink: exec %s: job %s: %w", name, j.ID, err)
}

// errTimedOut is the cause of Handle's context when Timeout ends it.
var errTimedOut = errors.New("sink: exec: timeout")

// retryAfterLine reads the pause the last line of out asks for at time
// now: "retry-after: 5s" (a Go duration), "retry-after: 5" (whole seconds)
// or "retry-after: <HTTP-date>". It returns the value as written, and
// ok false if there is no such line or its value is malformed.
func retryAfterLine(out string, now time.Time) (v string, d time.Duration, ok bool) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	k, v, found := strings.Cut(last, ":")
	if !found || !strings.EqualFold(strings.TrimSpace(k), "retry-after") {
		return "", 0, false
	}
	v = strings.TrimSpace(v)
	if d, ok := parseRetryAfter(v, now); ok {
		return v, d, true
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return v, d, true
	}
	return v, 0, false
}

// tail keeps the last 1 KiB written to it.
type tail struct{ b []byte }

const tailMax = 1024

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = t.b[len(t.b)-tailMax:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }

func (t *tail) suffix() string {
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	return ": " + s
}
