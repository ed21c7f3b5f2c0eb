package modcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// heavy are modules that only the CLI, the benches, the examples and the
// browser test use: a library user must not get them.
var heavy = []string{
	"github.com/chromedp/",
	"github.com/aws/aws-sdk-go-v2",
	"github.com/nats-io/nats-server/",
	"github.com/rabbitmq/amqp091-go",
	"github.com/alicebob/miniredis/",
	"github.com/urfave/cli/",
	"github.com/prometheus/",
	"github.com/BurntSushi/toml",
}

// A module outside the repository that imports pacer and the adapters, with
// replace directives to this checkout, as a user's program would before a
// release: its module graph holds none of the heavy modules. Its go.sum
// starts from the library modules' own, so the go command needs the
// module proxy (for go.mod files the build did not fetch) but no checksum
// database.
func TestLibraryUserGetsNoCLIModules(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const placeholder = "v0.0.0-00010101000000-000000000000"
	gomod := "module example.com/libuser\n\ngo 1.26.0\n\nrequire (\n" +
		"\tgithub.com/jobpacer/pacer/adapters " + placeholder + "\n" +
		"\tgithub.com/jobpacer/pacer/pacer " + placeholder + "\n)\n\nreplace (\n" +
		"\tgithub.com/jobpacer/pacer/adapters => " + filepath.Join(root, "adapters") + "\n" +
		"\tgithub.com/jobpacer/pacer/pacer => " + filepath.Join(root, "pacer") + "\n" +
		"\tgithub.com/jobpacer/pacer/testutil => " + filepath.Join(root, "testutil") + "\n)\n"
	main := `package main

import (
	"fmt"

	"github.com/jobpacer/pacer/adapters/asynqpacer"
	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/pacer"
)

func main() {
	p, err := pacer.New(pacer.Config{Rate: 10})
	fmt.Println(p != nil, err, asynqpacer.Middleware, natspacer.Consume, redisbucket.New)
}
`
	write(t, filepath.Join(dir, "go.mod"), gomod)
	write(t, filepath.Join(dir, "main.go"), main)
	// The library modules' go.sum files hold the checksums of everything
	// they need, verified when they were tidied: the user's module starts
	// from them, as it would from the go.sum of a release, so the go
	// command needs no checksum database (CI has no internet).
	var sums strings.Builder
	for _, m := range []string{"adapters", "pacer", "testutil"} {
		b, err := os.ReadFile(filepath.Join(root, m, "go.sum"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		sums.Write(b)
	}
	write(t, filepath.Join(dir, "go.sum"), sums.String())
	gocmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	gocmd("mod", "tidy")
	gocmd("build", "-o", os.DevNull, ".")
	all := strings.Fields(gocmd("list", "-m", "-f", "{{.Path}}", "all"))
	t.Logf("go list -m all: %d modules (the user's own included)", len(all))
	for _, m := range all {
		for _, h := range heavy {
			if strings.HasPrefix(m, h) {
				t.Errorf("a program that imports only pacer and the adapters gets %s in its module graph", m)
			}
		}
	}
	if len(all) < 5 {
		t.Errorf("go list -m all listed %d modules: %q; the test proves nothing", len(all), all)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
