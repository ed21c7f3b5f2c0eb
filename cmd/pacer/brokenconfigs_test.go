package main_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the table of broken configs in docs/cli.md")

// brokenConfigs are the broken configs we know of: each is goodWorker with
// old replaced by new (or prefixed with a top-level line).
var brokenConfigs = []struct {
	what     string
	old, new string // new replaces old in goodWorker; old "" puts new before it
}{
	{"a number in quotes", "rate = 10", `rate = "20"`},
	{"a count in words", "rate = 10", "rate = 10\nmax_in_flight = \"ten\""},
	{"a fractional count", "rate = 10", "rate = 10\nmax_in_flight = 2.5"},
	{"a duration without a unit", "rate = 10", "rate = 10\nperiod = 5"},
	{"a duration that is not one", "rate = 10", "rate = 10\nbacklog_target = \"10 s\""},
	{"a negative rate", "rate = 10", "rate = -5"},
	{"no rate", "rate = 10\n", ""},
	{"base above rate", "rate = 10", "rate = 10\nbase = 20"},
	{"burst written as 0", "rate = 10", "rate = 10\nburst = 0"},
	{"a fractional burst", "rate = 10", "rate = 10\nburst = 5.5"},
	{"min_factor above max_factor", "rate = 10", "rate = 10\nmin_factor = 2\nmax_factor = 1.5"},
	{"[worker] for [[worker]]", "[[worker]]", "[worker]"},
	{"[[worker.source]] for [worker.source]", "[worker.source]", "[[worker.source]]"},
	{"a worker key below its source table", "subject = \"x.>\"", "subject = \"x.>\"\nmax_in_flight = 4"},
	{"a misspelt key", "rate = 10", "rate = 10\nmax_inflight = 3"},
	{"no sink", "[worker.sink]\nkind = \"log\"\n", ""},
	{"an unknown kind", "kind = \"nats\"", "kind = \"kafka\""},
	{"an exec command as a string", "kind = \"log\"", "kind = \"exec\"\ncommand = \"./handle.sh\""},
	{"an exec command that is not there", "kind = \"log\"", "kind = \"exec\"\ncommand = [\"./handle.sh\"]"},
	{"an exec command not on PATH", "kind = \"log\"", "kind = \"exec\"\ncommand = [\"handle-job\"]"},
	{"an http URL without a scheme", "kind = \"log\"", "kind = \"http\"\nurl = \"localhost:8080/jobs\""},
	{"a log sink level", "kind = \"log\"", "kind = \"log\"\nlevel = \"loud\""},
	{"a fleet that is not defined", "rate = 10", "rate = 10\nfleet = \"mailgun\""},
	{"a Redis URL for a Redis address", "", "[redis]\naddr = \"redis://127.0.0.1:6379\""},
	{"a Redis address without a port", "", "[redis]\naddr = \"localhost\""},
	{"a NATS URL of another scheme", "", "[nats]\nurl = \"http://127.0.0.1:4222\""},
	{"a log level", "", "log_level = \"verbose\""},
	{"a status line every 100ms", "", "status_every = \"100ms\""},
	{"limits retention without max_age", "kind = \"nats\"\nsubject = \"x.>\"", "kind = \"jetstream\"\nstream = \"JOBS\"\nretention = \"limits\""},
	{"a TOML syntax error", "rate = 10", "rate = ten"},
}

// TestBrokenConfigTable runs pacer check on every broken config we know
// of: each is refused (exit 2) with one line that names a line of the
// file, and docs/cli.md lists them with that line.
func TestBrokenConfigTable(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("| broken | `pacer check` says |\n| --- | --- |\n")
	for _, bc := range brokenConfigs {
		cfg := goodWorker
		if bc.old == "" {
			cfg = bc.new + "\n" + goodWorker
		} else {
			if !strings.Contains(cfg, bc.old) {
				t.Fatalf("%s: %q is not in the good config", bc.what, bc.old)
			}
			cfg = strings.Replace(cfg, bc.old, bc.new, 1)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := pacerIn(t, dir, nil, "check")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "config.toml:") {
			t.Errorf("%s: pacer check: exit %d, %q; want exit 2 and one line naming a line of config.toml", bc.what, code, out)
		}
		shown := strings.TrimPrefix(bc.new, bc.old+"\n") // the line added, not its anchor
		if shown == "" {
			shown = "(no " + strings.TrimSpace(strings.Split(bc.old, "\n")[0]) + ")"
		}
		fmt.Fprintf(&b, "| %s: `%s` | `%s` |\n", bc.what, strings.ReplaceAll(shown, "\n", "` `"), strings.ReplaceAll(lines[0], "|", `\|`))
	}
	const path = "../../docs/cli.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- broken-configs: begin -->\n", "<!-- broken-configs: end -->"
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q markers", path, begin, end)
	}
	want := string(doc[:i+len(begin)]) + b.String() + string(doc[j:])
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != string(doc) {
		t.Errorf("the table of broken configs in docs/cli.md is stale: run go test ./cmd/pacer -run TestBrokenConfigTable -update")
	}
}
