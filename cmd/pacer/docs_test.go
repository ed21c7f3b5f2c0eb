package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	core "github.com/jobpacer/pacer/pacer"
)

// The pictures and tables in docs/ are made by the binary, by go generate
// (see main.go): they fail here when they no longer match what pacer
// simulate draws. Run `go generate ./cmd/pacer` to redraw them.
func TestDocsPicturesFresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sc, duration string }{
		{"burst", "2m"}, {"throttle-storm", "2m"}, {"moving-capacity", "2m"}, {"queueing", "6m"},
	} {
		sc := tc.sc
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := filepath.Join(dir, "simulate-"+sc+".svg")
			if o, code := pacer(t, "simulate", "-c", "../../config.toml", "--scenario", sc, "--duration", tc.duration, "--out", out); code != 0 {
				t.Fatalf("pacer simulate: exit %d: %s", code, o)
			}
			for _, ext := range []string{".svg", ".csv"} {
				name := "simulate-" + sc + ext
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				committed, err := os.ReadFile(filepath.Join("../../docs", name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, committed) {
					t.Errorf("docs/%s is stale: pacer simulate draws another one; run go generate ./cmd/pacer", name)
				}
			}
		})
	}
}

// docs/core.md quotes the error of a bad setting; the quote is what the
// core prints (the CLI's texts are kept by TestBrokenConfigTable, the fault
// suite's by TestAbsurdSettingsRefused).
func TestDocsQuoteCoreError(t *testing.T) {
	t.Parallel()
	_, err := core.New(core.Config{Rate: 10, Base: 20})
	if err == nil {
		t.Fatal("pacer.New(Rate: 10, Base: 20) = nil, want an error")
	}
	doc, rerr := os.ReadFile("../../docs/core.md")
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !strings.Contains(string(doc), "`"+err.Error()+"`") {
		t.Errorf("docs/core.md does not quote what pacer.New(Rate: 10, Base: 20) returns: `%v`", err)
	}
}
