package runner_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/runner"
	"github.com/jobpacer/pacer/internal/testenv"
)

// Issue 24 item 4: a reload that changes rate and max_in_flight together
// applies the rate and refuses max_in_flight, naming it; the refused key
// keeps its running value, so a second reload of the same file refuses it
// again and applies nothing more.
func TestReloadAppliesRateAndRefusesMaxInFlight(t *testing.T) {
	name := testenv.UniqueName(t)
	path := supervisedConfig(t, name, "kind = \"loop\"", "count", "")
	r, logs := startRunner(t, path)
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(cfg), "rate = 10\n", "rate = 40\nmax_in_flight = 20\n", 1)
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{
		`reload refused (restart to apply): worker "` + name + `": max_in_flight changed (0 → 20) (only rate and base reload in place); applied: worker "` + name + `" rate 10 → 40, base 10 → 40`,
		`reload refused (restart to apply): worker "` + name + `": max_in_flight changed (0 → 20) (only rate and base reload in place); nothing applied`,
	} {
		f, err := plugin.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		err = r.Reload(f)
		var re *runner.ReloadError
		if !errors.As(err, &re) || err.Error() != want {
			t.Errorf("Reload #%d = %v, want %s", i+1, err, want)
		}
		if c := r.Status().Workers[0].Ceiling; c != 40 {
			t.Errorf("after reload #%d the ceiling is %g, want 40", i+1, c)
		}
	}
	if n := strings.Count(logs.String(), "msg=reloaded"); n != 1 {
		t.Errorf("%d \"reloaded\" lines, want 1:\n%s", n, logs)
	}

	// A top-level change is named too; the workers' rate still applies.
	top := strings.Replace(string(cfg), "rate = 10\n", "rate = 30\n", 1)
	top = strings.Replace(top, `status_every = "0s"`, `status_every = "2s"`, 1)
	if err := os.WriteFile(path, []byte(top), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := plugin.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `reload refused (restart to apply): status_every changed (0s → 2s); applied: worker "` + name + `" rate 40 → 30, base 40 → 30`
	if err := r.Reload(f); err == nil || err.Error() != want {
		t.Errorf("Reload(status_every, rate) = %v, want %s", err, want)
	}
}
