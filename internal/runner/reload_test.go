package runner

import (
	"strings"
	"testing"

	"github.com/jobpacer/pacer/internal/config"
)

// A refused reload names each key that cannot change in place, with its
// old and new value, not "a pace setting other than rate and base".
func TestReloadNamesTheRefusedKeys(t *testing.T) {
	a := config.Worker{Name: "emails", Rate: 20, MaxInFlight: 10, PauseAfter: config.Duration(5e9)}
	b := config.Worker{Name: "emails", Rate: 40, MaxInFlight: 20, PauseAfter: config.Duration(7e9)}
	got := strings.Join(changedKeys(a, b), "\n")
	for _, want := range []string{"max_in_flight changed (10 → 20)", "pause_after changed (5s → 7s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("structural = %q, want it to say %q", got, want)
		}
	}
	if strings.Contains(got, "rate ") {
		t.Errorf("structural = %q names rate, which reloads in place", got)
	}
}
