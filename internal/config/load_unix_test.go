//go:build unix

package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/config"
)

// A config path that is not a regular file is refused without reading
// it: opening a FIFO with no writer blocked pacer check forever (issue
// 19), and /dev/zero never ends.
func TestLoadRefusesNonRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{fifo, "fifo.toml: a named pipe (FIFO), not a regular file: want a config file"},
		{dir, filepath.Base(dir) + ": a directory, not a regular file: want a config file"},
		{"/dev/zero", "zero: a character device, not a regular file: want a config file"},
	} {
		done := make(chan error, 1)
		go func() { _, err := config.Load(tt.path, nil); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Minute): // a safety net, not a measure
			if f, oerr := os.OpenFile(fifo, os.O_WRONLY, 0); oerr == nil { // unblock it
				f.Close()
			}
			<-done
			t.Fatalf("Load(%s) blocked", tt.path)
		}
		var es config.Errors
		if !errors.As(err, &es) || len(es) != 1 || !strings.HasPrefix(es[0].Error(), tt.want) {
			t.Errorf("Load(%s) = %v, want one error starting %q", tt.path, err, tt.want)
		}
	}
}
