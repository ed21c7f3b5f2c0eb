package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
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
