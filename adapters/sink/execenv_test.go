package sink_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jobpacer/pacer/adapters/sink"
)

// The command gets the default allow-list of pacer's environment, what
// env names or sets, and the job's PACER_JOB_* variables; nothing else
// (not REDIS_PASSWORD, not PACER_CONFIG).
func TestExecEnvAllowList(t *testing.T) {
	t.Setenv("REDIS_PASSWORD", "pacer-secret-1")
	t.Setenv("NATS_TOKEN", "pacer-secret-2")
	t.Setenv("PACER_CONFIG", "/etc/pacer/config.toml")
	t.Setenv("LC_TIME", "C")
	t.Setenv("AWS_PROFILE", "jobs")
	t.Setenv("APP_ONE", "1")
	t.Setenv("APP_TWO", "2")
	out := filepath.Join(t.TempDir(), "env")
	for _, tt := range []struct {
		env        []string
		want, none []string
	}{
		{nil, []string{"PATH=" + os.Getenv("PATH"), "LC_TIME=C", "PACER_JOB_ID=j1", "PACER_WORKER=w"},
			[]string{"REDIS_PASSWORD", "NATS_TOKEN", "PACER_CONFIG", "AWS_PROFILE", "APP_ONE"}},
		{[]string{"AWS_PROFILE", "APP_*", "EXTRA=x", "PATH=/bin:/usr/bin"},
			[]string{"AWS_PROFILE=jobs", "APP_ONE=1", "APP_TWO=2", "EXTRA=x", "PATH=/bin:/usr/bin", "PACER_JOB_ATTEMPT=2"},
			[]string{"REDIS_PASSWORD", "NATS_TOKEN", "PACER_CONFIG"}},
	} {
		s, err := sink.NewExec(sink.ExecConfig{Command: []string{"sh", "-c", `env > "$1"`, "sh", out}, Env: tt.env})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Handle(context.Background(), job()); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for _, w := range tt.want {
			if !slices.Contains(lines, w) {
				t.Errorf("env = %q: the command's environment has no %s:\n%s", tt.env, w, b)
			}
		}
		for _, l := range lines {
			k, _, _ := strings.Cut(l, "=")
			if slices.Contains(tt.none, k) {
				t.Errorf("env = %q: the command's environment has %s", tt.env, l)
			}
		}
	}
}
