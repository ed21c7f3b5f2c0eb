package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	// Env adds KEY=VALUE entries to the worker's environment.
	Env []string `toml:"env"`
	// Timeout ends a command that runs longer (an error, retried). The
	// default value is 1m.
	Timeout time.Duration `toml:"timeout"`
	// ThrottleExitCodes are the exit codes that mean "throttled, slow
	// down". The default value is [75] (EX_TEMPFAIL).
	ThrottleExitCodes []int `toml:"throttle_exit_codes"`
	// RetryAfter is the pause a throttled exit asks for; the command can
	// also print "retry-after: 5s" as the last line of its stdout. The
	// default value, 0, leaves it to the worker's default_retry_after.
	RetryAfter time.Duration `toml:"retry_after"`
}

// Exec is a Sink that runs a command per job: the payload on stdin, and
// PACER_JOB_ID, PACER_JOB_TYPE, PACER_JOB_ATTEMPT and PACER_WORKER in the
// environment. Exit 0 is success; an exit code in ThrottleExitCodes is a
// throttled outcome; any other exit, or running past Timeout, is an error
// that carries the tail of the command's stderr.
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
	if c.RetryAfter < 0 {
		return nil, invalid("exec", "retry_after", c.RetryAfter, "a duration ≥ 0s")
	}
	for _, kv := range c.Env {
		if !strings.Contains(kv, "=") {
			return nil, invalid("exec", "env", fmt.Sprintf("%q", kv), "KEY=VALUE entries")
		}
	}
	return &Exec{cfg: c}, nil
}

// Handle runs the command for j and waits for it; ctx ending kills it.
func (e *Exec) Handle(ctx context.Context, j Job) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cfg.Command[0], e.cfg.Command[1:]...)
	cmd.Dir = e.cfg.Dir
	cmd.Env = append(os.Environ(), e.cfg.Env...)
	cmd.Env = append(cmd.Env,
		"PACER_JOB_ID="+j.ID, "PACER_JOB_TYPE="+j.Type,
		"PACER_JOB_ATTEMPT="+strconv.Itoa(j.Attempt), "PACER_WORKER="+j.Worker)
	cmd.Stdin = bytes.NewReader(j.Payload)
	var stdout, stderr tail
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("sink: exec %s: job %s: %w after %v", e.cfg.Command[0], j.ID, ctx.Err(), e.cfg.Timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		cause := fmt.Errorf("sink: exec %s: job %s: exit %d%s", e.cfg.Command[0], j.ID, code, stderr.suffix())
		if slices.Contains(e.cfg.ThrottleExitCodes, code) {
			return pacer.Throttle(retryAfterLine(stdout.String(), e.cfg.RetryAfter), cause)
		}
		return cause
	}
	return fmt.Errorf("sink: exec %s: job %s: %w", e.cfg.Command[0], j.ID, err)
}

// retryAfterLine reads "retry-after: 5s" (or a number of seconds) from the
// last line of out, else returns def.
func retryAfterLine(out string, def time.Duration) time.Duration {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	k, v, ok := strings.Cut(last, ":")
	if !ok || !strings.EqualFold(strings.TrimSpace(k), "retry-after") {
		return def
	}
	v = strings.TrimSpace(v)
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	return def
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
