//go:build unix

package main_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pacer check refuses at once a config that would cost the TOML decoder
// minutes and gigabytes, and a FIFO as the config path, which blocked it
// forever (issue 19): each is one line naming the file (and the line and
// the limit), exit 2.
func TestCheckRefusesCostlyConfigs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// 16,000 nested inline tables: 96 KB, under the 1 MiB cap; 87 s and
	// 13 GB in the decoder.
	writeFile(t, dir, "nested.toml", "admin = \"\"\na = "+strings.Repeat("{b = ", 16000)+"1"+strings.Repeat("}", 16000)+"\n")
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.toml"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ file, want string }{
		{"nested.toml", "nested.toml:2: tables, arrays and dotted keys nested more than 16 levels deep: want at most 16"},
		{"fifo.toml", "fifo.toml: a named pipe (FIFO), not a regular file: want a config file"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			// A safety net, not a measure: before the fix the FIFO never
			// returned.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "check", tt.file)
			cmd.Dir, cmd.Env = dir, binEnv()
			out, _ := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("pacer check %s did not return: %s", tt.file, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if code := cmd.ProcessState.ExitCode(); code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], tt.want) {
				t.Fatalf("pacer check %s: exit %d, %q; want exit 2 and one line starting %q", tt.file, code, out, tt.want)
			}
			t.Logf("pacer check %s: %s", tt.file, lines[0])
		})
	}
}
