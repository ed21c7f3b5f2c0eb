package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jobpacer/pacer/internal/config"
)

// deep returns a file whose line 2 nests n levels of kind.
func deep(kind string, n int) string {
	var s string
	switch kind {
	case "inline tables":
		s = "a = " + strings.Repeat("{b = ", n) + "1" + strings.Repeat("}", n)
	case "arrays":
		s = "a = " + strings.Repeat("[", n) + "1" + strings.Repeat("]", n)
	case "a dotted key":
		s = "a" + strings.Repeat(".b", n) + " = 1"
	case "a table header":
		s = "[a" + strings.Repeat(".b", n) + "]"
	}
	return "admin = \"\"\n" + s + "\n"
}

// A file nested deeper than MaxNesting is refused before the TOML decoder
// reads it, at the line and with the limit (issue 19: 16,000 nested
// inline tables, a 96 KB file, took the decoder 87 s and 13 GB; a dotted
// key or a table header of as many parts costs as much).
func TestParseRefusesDeepNesting(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"inline tables", "arrays", "a dotted key", "a table header"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("dir/c.toml", deep(kind, 16000), build)
			var es config.Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("Parse() = %v, want one error", err)
			}
			want := "c.toml:2: tables, arrays and dotted keys nested more than 16 levels deep: want at most 16"
			if es[0].Error() != want {
				t.Fatalf("Parse() = %q, want %q", es[0], want)
			}
		})
	}
}

// What a config nests, and strings, comments and values that hold
// brackets, braces and dots, pass the guard.
func TestParseNestingAllowed(t *testing.T) {
	t.Parallel()
	const cfg = `# [[a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q]] {{{{{{{{{{{{{{{{{
[[worker]]
name = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{"
rate = 10.5
adjmap = [
  { min_cap = 0, lbound = 0.3, lfactor = 1.4, ubound = 0.7, ufactor = 0.73 },
]
[worker.source]
kind = 'x[[[[[[[[[[[[[[[[[[[[[[[[[[[.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a'
subject = """
[[[[[[[[[[[[[[[[[[[[ \""" {{{{{{{{{{{{{{{{{{{{{{ .a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a
"""
[worker.sink]
kind = "y"
`
	if _, err := config.Parse("c.toml", cfg, build); err != nil {
		t.Fatal(err)
	}
	// Just below the limit: 16 levels.
	if _, err := config.Parse("c.toml", deep("a dotted key", 15), nil); err != nil && strings.Contains(err.Error(), "nested") {
		t.Fatalf("16 levels: %v", err)
	}
	if _, err := config.Parse("c.toml", deep("a dotted key", 16), nil); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("17 levels: %v, want the nesting refused", err)
	}
}
