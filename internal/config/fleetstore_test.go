package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/internal/config"
)

func TestParseFleetStore(t *testing.T) {
	t.Parallel()
	f, err := config.Parse("c.toml", `
[fleet.mailgun]
store = "nats"
kv_bucket = "fleets"
rate = 40
lease_time = "200ms"
`+fleetWorker, build)
	if err != nil {
		t.Fatal(err)
	}
	fl := f.Fleets["mailgun"]
	want := natsbucket.Config{Key: "mailgun", Rate: 40, Burst: 1, LeaseTime: 200 * time.Millisecond,
		RetryInterval: 500 * time.Millisecond, Timeout: 250 * time.Millisecond, Prefix: natsbucket.DefaultPrefix}
	if fl.Store != config.StoreNATS || fl.KV() != "fleets" || fl.NATSSettings != want {
		t.Errorf("Fleets[mailgun] = store %q, kv %q, %+v; want nats, fleets, %+v", fl.Store, fl.KV(), fl.NATSSettings, want)
	}
	if w := f.Workers[0]; w.Settings.Rate != 40 {
		t.Errorf("worker rate = %g, want the fleet's 40", w.Settings.Rate)
	}
	for _, tc := range []struct{ name, table, want string }{
		{"an unknown store", "store = \"etcd\"\nrate = 5", `c.toml:3: fleet "mailgun" store: "etcd": want "redis"`},
		{"kv_bucket on Redis", "kv_bucket = \"x\"\nrate = 5", `fleet "mailgun" kv_bucket: "x": only a fleet with store = "nats"`},
		{"a NATS key that is no key-value key", "store = \"nats\"\nrate = 5\nprefix = \"a:b\"", `fleet "mailgun" prefix`},
	} {
		_, err := config.Parse("c.toml", "\n[fleet.mailgun]\n"+tc.table+"\n"+fleetWorker, build)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
