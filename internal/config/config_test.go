package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jobpacer/pacer/internal/config"
)

func build(p *config.Plugin) (any, error) {
	var c struct {
		Subject string `toml:"subject"`
	}
	return nil, p.Decode(&c)
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data, want string
	}{
		{"a bare number for a duration",
			"[[worker]]\nname = \"a\"\nrate = 1\nperiod = 5\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:4: worker.period: \"5\" is not a duration"},
		{"an unknown key in a plugin table",
			"[[worker]]\nname = \"a\"\nrate = 1\n[worker.source]\nkind = \"x\"\nsubjet = \"s\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:6: worker.source.subjet: unknown key"},
		{"a syntax error",
			"[[worker]\nname = 1\n", "c.toml:2: expected end of table array name"},
		{"base above rate",
			"[[worker]]\nname = \"a\"\nrate = 1\nbase = 2\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:4: worker \"a\" base: 2: want ≤ rate (1)"},
		{"no worker", "admin = \"\"\n", "c.toml: no [[worker]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("dir/c.toml", tt.data, build)
			var es config.Errors
			if !errors.As(err, &es) || len(es) != 1 || !strings.HasPrefix(es[0].Error(), tt.want) {
				t.Fatalf("Parse() = %v, want one error starting %q", err, tt.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	f, err := config.Parse("c.toml", "[[worker]]\nname = \"a\"\nrate = 8\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n", build)
	if err != nil {
		t.Fatal(err)
	}
	w := f.Workers[0]
	if f.Admin != config.DefaultAdmin || w.Base != 8 || w.Burst != 1 || w.Period.D().Seconds() != 1 || len(w.AdjMap) != 3 {
		t.Errorf("defaults: admin %q, base %g, burst %g, period %v, adjmap %d rows", f.Admin, w.Base, w.Burst, w.Period, len(w.AdjMap))
	}
	if got, want := f.Line("worker[0].rate"), 3; got != want {
		t.Errorf("Line(worker[0].rate) = %d, want %d", got, want)
	}
}

func ExampleParse() {
	_, err := config.Parse("config.toml", `
[[worker]]
name = "emails"
rate = -5
[worker.source]
kind = "asynq"
[worker.sink]
kind = "log"
`, nil)
	fmt.Println(err)
	// Output: config.toml:4: worker "emails" rate: -5: want jobs per second in (0, 1e+09]
}
