package main_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const goodWorker = `
[[worker]]
name = "a"
rate = 10

[worker.source]
kind = "nats"
subject = "x.>"

[worker.sink]
kind = "log"
`

func TestCheckBrokenConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string
		line   int
		want   []string // substrings of the one message
	}{
		{"unknown key", goodWorker + "\n[[worker]]\nname = \"b\"\nrate = 5\nmax_inflight = 3\n[worker.source]\nkind = \"nats\"\nsubject = \"y\"\n[worker.sink]\nkind = \"log\"\n",
			16, []string{"worker.max_inflight", "unknown key: did you mean max_in_flight?"}},
		{"negative rate", strings.Replace(goodWorker, "rate = 10", "rate = -5", 1),
			4, []string{`worker "a" rate`, "-5", "per second"}},
		{"min > max factor", strings.Replace(goodWorker, "rate = 10", "rate = 10\nmin_factor = 2\nmax_factor = 1.5", 1),
			5, []string{`worker "a" min_factor`, "2: want ≤ max_factor (1.5)"}},
		{"adjmap not descending", strings.Replace(goodWorker, "rate = 10", `rate = 10
adjmap = [
  { min_cap = 0,   lbound = 0.3, lfactor = 1.4, ubound = 0.7, ufactor = 0.73 },
  { min_cap = 128, lbound = 0.23, lfactor = 1.2, ubound = 0.77, ufactor = 0.81 },
]`, 1), 7, []string{`adjmap[1].min_cap`, "128: want less than the row before (0)", "descend"}},
		{"sink missing", strings.Replace(goodWorker, "[worker.sink]\nkind = \"log\"\n", "", 1),
			2, []string{`worker "a" sink`, "missing"}},
		{"duplicate worker name", goodWorker + strings.Replace(goodWorker, "x.>", "z", 1),
			14, []string{`worker "a" name`, "duplicate", "line 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := pacer(t, "check", "--config", path)
			t.Logf("pacer check: %s", strings.TrimSpace(out))
			if code == 0 {
				t.Fatalf("pacer check exit code 0, want non-zero; output %q", out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 {
				t.Fatalf("pacer check printed %d lines, want one message:\n%s", len(lines), out)
			}
			if prefix := "config.toml:" + strconv.Itoa(tt.line) + ": "; !strings.HasPrefix(lines[0], prefix) {
				t.Errorf("message %q does not start with %q", lines[0], prefix)
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("message %q does not say %q", lines[0], w)
				}
			}
		})
	}
}

func TestCheckDefaultConfig(t *testing.T) {
	t.Parallel()
	out, code := pacer(t, "check", "--config", "../../config.toml")
	if code != 0 || !strings.Contains(out, "ok: 2 workers") {
		t.Fatalf("pacer check config.toml: exit %d, %q", code, out)
	}
}

func TestSimulateWritesSVG(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svg := filepath.Join(dir, "pace.svg")
	out, code := pacer(t, "simulate", "--config", "../../config.toml", "--scenario", "throttle-storm", "--out", svg)
	if code != 0 {
		t.Fatalf("pacer simulate: exit %d: %s", code, out)
	}
	t.Log(strings.TrimSpace(out))
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "<svg ") || !strings.Contains(string(b), "</svg>") || !strings.Contains(string(b), "time (s)") {
		t.Errorf("pace.svg is not an SVG with a time axis: %.200s", b)
	}
	if c, err := os.ReadFile(filepath.Join(dir, "pace.csv")); err != nil || !strings.HasPrefix(string(c), "t_s,arrival_per_s,pace_per_s") {
		t.Errorf("pace.csv: %v %.100s", err, c)
	}
}

// Issue 24 item 9: --help says what each scenario does; the SVG marks the
// storm, its pauses and plots the 429s; the CSV's times are round; a
// worker without latency_target runs queueing with "auto", and says so.
func TestSimulateHelpMarksAndRoundTimes(t *testing.T) {
	t.Parallel()
	out, code := pacer(t, "help", "simulate")
	if code != 0 {
		t.Fatalf("pacer help simulate: exit %d: %s", code, out)
	}
	for _, want := range []string{"steady: arrivals", "burst: arrivals", "throttle-storm: arrivals", "moving-capacity: arrivals", "queueing: arrivals", "servers"} {
		if !strings.Contains(out, want) {
			t.Errorf("pacer help simulate lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	svg := filepath.Join(dir, "storm.svg")
	if out, code := pacer(t, "simulate", "-c", "../../config.toml", "--scenario", "throttle-storm", "--out", svg); code != 0 {
		t.Fatalf("pacer simulate: exit %d: %s", code, out)
	}
	b, _ := os.ReadFile(svg)
	for _, want := range []string{"storm: 3 in 4 jobs 429", "429s (1 s window)", "paused (pace 0)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("storm.svg lacks %q", want)
		}
	}
	c, _ := os.ReadFile(filepath.Join(dir, "storm.csv"))
	for i, line := range strings.Split(strings.TrimSpace(string(c)), "\n")[1:] {
		if ts, _, _ := strings.Cut(line, ","); len(ts) > 6 {
			t.Fatalf("storm.csv row %d: t_s %q, want a round time", i+1, ts)
		}
	}
	out, code = pacer(t, "simulate", "-c", "../../config.toml", "--scenario", "queueing", "--out", filepath.Join(dir, "q.svg"))
	if code != 0 || !strings.Contains(out, `this run uses latency_target = "auto"`) {
		t.Errorf("pacer simulate --scenario queueing: exit %d, %q; want 0 and a note that it runs with latency_target = \"auto\"", code, out)
	}
}
