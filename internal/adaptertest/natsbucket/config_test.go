package natsbucket_test

import (
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/jobpacer/pacer/adapters/natsbucket"
)

// A [fleet.NAME] table decodes into natsbucket.Config by its toml tags (the
// CLI's own decoder; here, in the root module, so that the adapters' module
// does not require a TOML library).
func TestConfigFromTOML(t *testing.T) {
	var c natsbucket.Config
	if _, err := toml.Decode("key = \"sms\"\nrate = 40\nlease_time = \"250ms\"\n", &c); err != nil {
		t.Fatal(err)
	}
	d, err := c.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if d.Key != "sms" || d.Rate != 40 || d.LeaseTime != 250*time.Millisecond || d.Prefix != natsbucket.DefaultPrefix || d.Burst != 1 {
		t.Errorf("decoded %+v", d)
	}
}
