package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/redisbucket"
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

const fleetWorker = `
[[worker]]
name = "a"
fleet = "mailgun"
[worker.source]
kind = "x"
[worker.sink]
kind = "y"
`

func TestParseFleet(t *testing.T) {
	t.Parallel()
	f, err := config.Parse("c.toml", `
[redis]
addr = "embedded"

[fleet.mailgun]
rate = 40
expected_workers = 2
lease_time = "200ms"

[fleet.twilio]
rate = 5
burst = 3
`+fleetWorker+`
[[worker]]
name = "b"
fleet = "mailgun"
rate = 100
burst = 4
[worker.source]
kind = "x"
[worker.sink]
kind = "y"
`, build)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(f.Fleets), 2; got != want {
		t.Fatalf("len(Fleets) = %d, want %d", got, want)
	}
	fl := f.Fleets["mailgun"]
	want := redisbucket.Config{Key: "mailgun", Rate: 40, Burst: 1, ExpectedWorkers: 2, LeaseTime: 200 * time.Millisecond,
		RetryInterval: redisbucket.DefaultRetryInterval, Timeout: redisbucket.DefaultTimeout, Prefix: redisbucket.DefaultPrefix}
	if got := fl.Bucket(); got != want {
		t.Errorf("Fleets[mailgun].Bucket() = %+v, want %+v", got, want)
	}
	if got := f.Fleets["twilio"].Burst; got != 3 {
		t.Errorf("Fleets[twilio].Burst = %g, want 3", got)
	}
	a, b := f.Workers[0], f.Workers[1]
	if a.Fleet != "mailgun" || b.Fleet != "mailgun" {
		t.Errorf("worker fleets %q, %q, want mailgun for both", a.Fleet, b.Fleet)
	}
	// A worker without a rate of its own may use the whole fleet limit.
	if a.Rate != 40 || a.Base != 40 {
		t.Errorf("worker a: rate %g, base %g, want 40 and 40 (the fleet's rate)", a.Rate, a.Base)
	}
	if b.Rate != 100 {
		t.Errorf("worker b: rate %g, want its own 100", b.Rate)
	}
	// base_burst defaults to burst.
	if a.BaseBurst != 1 || b.BaseBurst != 4 {
		t.Errorf("base_burst: a %g, b %g, want 1 and 4 (burst)", a.BaseBurst, b.BaseBurst)
	}
}

func TestParseFleetErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		want       []string // one error each, in line order, as prefixes
	}{
		{"a fleet that is not defined",
			"[fleet.mailgun]\nrate = 40\n" + strings.Replace(fleetWorker, `"mailgun"`, `"mailgn"`, 1),
			[]string{`c.toml:6: worker "a" fleet: "mailgn": no [fleet.mailgn] table in the file; add one with the fleet's rate (see "A limit shared by a fleet" in README.md); defined: "mailgun"`}},
		{"no fleets at all, and so no rate",
			fleetWorker,
			[]string{`c.toml:4: worker "a" fleet: "mailgun": no [fleet.mailgun] table in the file; add one with the fleet's rate (see "A limit shared by a fleet" in README.md)`}},
		{"an empty fleet name on the worker",
			"[fleet.m]\nrate = 4\n" + strings.Replace(fleetWorker, `fleet = "mailgun"`, "fleet = \"\"\nrate = 3", 1),
			[]string{`c.toml:6: worker "a" fleet: "": name a [fleet.NAME] table, or leave fleet out; defined: "m"`}},
		{"a zero rate",
			"[fleet.mailgun]\nrate = 0\n" + fleetWorker,
			[]string{`c.toml:2: fleet "mailgun" rate: 0: want jobs per second in (0, 1e+09], for the whole fleet`}},
		{"a negative rate",
			"[fleet.mailgun]\nrate = -3\n" + fleetWorker,
			[]string{`c.toml:2: fleet "mailgun" rate: -3: want jobs per second in (0, 1e+09]`}},
		{"a missing rate",
			"[fleet.mailgun]\nburst = 2\n" + fleetWorker,
			[]string{`c.toml:1: fleet "mailgun" rate: missing: rate (jobs per second for the whole fleet) is required`}},
		{"an unknown key in a fleet",
			"[fleet.mailgun]\nrate = 4\nexpected_worker = 2\n" + fleetWorker,
			[]string{`c.toml:3: fleet.mailgun.expected_worker: unknown key`}},
		{"a bare number for lease_time",
			"[fleet.mailgun]\nrate = 4\nlease_time = 100\n" + fleetWorker,
			[]string{`c.toml:3: fleet.mailgun.lease_time: "100" is not a duration`}},
		{"lease_time out of range, negative expected_workers, burst and timeout",
			"[fleet.mailgun]\nrate = 4\nlease_time = \"20s\"\nexpected_workers = -1\nburst = -2\ntimeout = \"-1s\"\n" + fleetWorker,
			[]string{`c.toml:3: fleet "mailgun" lease_time: 20s: want a duration in [1ms, 10s]`,
				`c.toml:4: fleet "mailgun" expected_workers: -1: want processes ≥ 0`,
				`c.toml:5: fleet "mailgun" burst: -2: want jobs > 0`,
				`c.toml:6: fleet "mailgun" timeout: -1s: want a duration > 0s`}},
		{"fleet written below the worker's source table",
			"[fleet.mailgun]\nrate = 4\n[[worker]]\nname = \"a\"\nrate = 3\n[worker.source]\nkind = \"x\"\nfleet = \"mailgun\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:8: worker.source.fleet: unknown key: fleet is a key of the [[worker]] itself; put it before the worker's [worker.source]`}},
		{"base_burst above burst",
			"[[worker]]\nname = \"a\"\nrate = 3\nburst = 2\nbase_burst = 3\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:5: worker "a" base_burst: 3: want ≤ burst (2): the ceiling caps bursts`}},
		{"a bad burst is one message, not two",
			"[[worker]]\nname = \"a\"\nrate = 3\nburst = 0.5\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:4: worker "a" burst: 0.5: want jobs ≥ 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("dir/c.toml", tt.data, build)
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse() = %v, want Errors", err)
			}
			if len(es) != len(tt.want) {
				t.Fatalf("Parse() = %d errors, want %d:\n%v", len(es), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d = %q, want it to start %q", i, es[i].Error(), w)
				}
			}
		})
	}
}

// The capacity controller's settings map to pacer.Config, and a bad one is
// reported at its own key, by the core's rule.
func TestCapacitySettings(t *testing.T) {
	t.Parallel()
	src := func(extra string) string {
		return "[[worker]]\nname = \"w\"\nrate = 100\n" + extra + "[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n"
	}
	f, err := config.Parse("c.toml", src("latency_target = \"50ms\"\npause_after = \"10s\"\nstorm_share = 0.8\n"), build)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Workers[0].Pacer()
	if c.LatencyTarget != 50*time.Millisecond || c.PauseAfter != 10*time.Second || c.StormShare != 0.8 {
		t.Fatalf("pacer.Config: latency_target %v, pause_after %v, storm_share %v; want 50ms, 10s, 0.8", c.LatencyTarget, c.PauseAfter, c.StormShare)
	}
	_, err = config.Parse("c.toml", src("storm_share = 2\n"), build)
	if want := "c.toml:4: worker \"w\": "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "storm_share") {
		t.Fatalf("Parse with storm_share = 2: %v; want an error starting %q that names storm_share", err, want)
	}
}
