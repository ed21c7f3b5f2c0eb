package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/pacer"
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
			`c.toml:4: worker "a" period: 5 is a number: want a duration in quotes with a unit, such as "10s"`},
		{"an unknown key in a plugin table",
			"[[worker]]\nname = \"a\"\nrate = 1\n[worker.source]\nkind = \"x\"\nsubjet = \"s\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:6: worker.source.subjet: unknown key: did you mean subject? (see docs/config.md)"},
		// Issue 24 item 8: a misspelt key names the nearest key of its table.
		{"a misspelt worker key",
			"[[worker]]\nname = \"a\"\nrate = 1\nmax_inflight = 3\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:4: worker.max_inflight: unknown key: did you mean max_in_flight? (see docs/config.md)"},
		{"a misspelt key of a nested table",
			"[redis.sentinel]\nmaster = \"m\"\naddrs = [\"127.0.0.1:26379\"]\npasword = \"p\"\n[[worker]]\nname = \"a\"\nrate = 1\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:4: redis.sentinel.pasword: unknown key: did you mean password? (see docs/config.md)"},
		{"an unknown key near no known key",
			"[[worker]]\nname = \"a\"\nrate = 1\nqqqq = 3\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:4: worker.qqqq: unknown key: check its spelling (see docs/config.md)"},
		{"a syntax error",
			"[[worker]\nname = 1\n", "c.toml:2: expected end of table array name"},
		{"base above rate",
			"[[worker]]\nname = \"a\"\nrate = 1\nbase = 2\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			"c.toml:4: worker \"a\" base: 2: want ≤ rate (1)"},
		{"no worker", "admin = \"\"\n", "c.toml: no [[worker]]"},
		{"admin_pprof on a non-loopback admin address",
			"admin = \"0.0.0.0:9464\"\nadmin_pprof = true\n[[worker]]\nname = \"a\"\nrate = 1\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			`c.toml:2: admin_pprof: true with admin = "0.0.0.0:9464": /debug/pprof/ is served on a loopback address only`},
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
	// The pace's defaults are package pacer's: Settings holds them.
	w := f.Workers[0].Settings
	if f.Admin != config.DefaultAdmin || w.Base != 8 || w.Burst != pacer.DefaultBurst || w.Period != pacer.DefaultControllerPeriod || len(w.AdjMap) != len(pacer.DefaultAdjMap()) {
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
	// Output: config.toml:4: worker "emails" rate: -5: want a number ≥ 1e-08 and ≤ 1e+09 per second
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
	if got := fl.Settings; got != want {
		t.Errorf("Fleets[mailgun].Bucket() = %+v, want %+v", got, want)
	}
	if got := f.Fleets["twilio"].Burst; got != 3 {
		t.Errorf("Fleets[twilio].Burst = %g, want 3", got)
	}
	if f.Workers[0].Fleet != "mailgun" || f.Workers[1].Fleet != "mailgun" {
		t.Errorf("worker fleets %q, %q, want mailgun for both", f.Workers[0].Fleet, f.Workers[1].Fleet)
	}
	a, b := f.Workers[0].Settings, f.Workers[1].Settings
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
			[]string{`c.toml:6: worker "a" fleet: "mailgn": no [fleet.mailgn] table in the file; add one with the fleet's rate (see docs/fleet.md); defined: "mailgun"`}},
		{"no fleets at all, and so no rate",
			fleetWorker,
			[]string{`c.toml:4: worker "a" fleet: "mailgun": no [fleet.mailgun] table in the file; add one with the fleet's rate (see docs/fleet.md)`}},
		{"an empty fleet name on the worker",
			"[fleet.m]\nrate = 4\n" + strings.Replace(fleetWorker, `fleet = "mailgun"`, "fleet = \"\"\nrate = 3", 1),
			[]string{`c.toml:6: worker "a" fleet: "": name a [fleet.NAME] table, or leave fleet out; defined: "m"`}},
		{"a zero rate",
			"[fleet.mailgun]\nrate = 0\n" + fleetWorker,
			[]string{`c.toml:2: fleet "mailgun" rate: 0: want a number in [1e-08, 1e+09] (jobs per second)`}},
		{"a negative rate",
			"[fleet.mailgun]\nrate = -3\n" + fleetWorker,
			[]string{`c.toml:2: fleet "mailgun" rate: -3: want a number in [1e-08, 1e+09]`}},
		{"a missing rate",
			"[fleet.mailgun]\nburst = 2\n" + fleetWorker,
			[]string{`c.toml:1: fleet "mailgun" rate: missing: rate is required: want a number in [1e-08, 1e+09]`}},
		{"an unknown key in a fleet",
			"[fleet.mailgun]\nrate = 4\nexpected_worker = 2\n" + fleetWorker,
			[]string{`c.toml:3: fleet.mailgun.expected_worker: unknown key: did you mean expected_workers?`}},
		{"a bare number for lease_time",
			"[fleet.mailgun]\nrate = 4\nlease_time = 100\n" + fleetWorker,
			[]string{`c.toml:3: fleet "mailgun" lease_time: 100 is a number: want a duration in quotes with a unit`}},
		{"lease_time out of range: redisbucket names the first bad field of a fleet",
			"[fleet.mailgun]\nrate = 4\nlease_time = \"20s\"\nexpected_workers = 1\n" + fleetWorker,
			[]string{`c.toml:3: fleet "mailgun" lease_time: 20s: want in [1ms, 10s]`}},
		{"a negative burst of a fleet",
			"[fleet.mailgun]\nrate = 4\nburst = -2\n" + fleetWorker,
			[]string{`c.toml:3: fleet "mailgun" burst: -2: want a finite number ≥ 1`}},
		{"a fleet's timeout written as 0s is not the default's placeholder",
			"[fleet.mailgun]\nrate = 4\ntimeout = \"0s\"\n" + fleetWorker,
			[]string{`c.toml:3: fleet "mailgun" timeout: 0s: 0 here means the default, "250ms"`}},
		{"fleet written below the worker's source table",
			"[fleet.mailgun]\nrate = 4\n[[worker]]\nname = \"a\"\nrate = 3\n[worker.source]\nkind = \"x\"\nfleet = \"mailgun\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:8: worker.source.fleet: unknown key: fleet is a key of the [[worker]] itself; put it before the worker's [worker.source]`}},
		{"base_burst above burst",
			"[[worker]]\nname = \"a\"\nrate = 3\nburst = 2\nbase_burst = 3\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:5: worker "a" base_burst: 3: want ≤ burst (2): the ceiling caps bursts`}},
		{"every bad key of a worker, not only the first",
			"[[worker]]\nname = \"a\"\nrate = 3\nburst = -3\nmax_factor = 0.5\nperiod = \"1ns\"\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:4: worker "a" burst: -3: want a whole number of jobs ≥ 1`,
				`c.toml:5: worker "a" min_factor, max_factor: 0.1, 0.5: want min_factor ≤ 1 ≤ max_factor`,
				`c.toml:6: worker "a" period: 1ns: want ≥ 10ms`}},
		{"every bad key of a fleet, not only the first",
			"[fleet.mailgun]\nrate = 4\nburst = -2\nlease_time = \"20s\"\n" + fleetWorker,
			[]string{`c.toml:3: fleet "mailgun" burst: -2: want a finite number ≥ 1`,
				`c.toml:4: fleet "mailgun" lease_time: 20s: want in [1ms, 10s]`}},
		{"no second error about a default the first bad key left behind",
			"[[worker]]\nname = \"a\"\nrate = 3\nburst = -3\nbase_burst = 2\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:4: worker "a" burst: -3: want a whole number of jobs ≥ 1`}},
		{"a required key out of range is one message, not a second that calls it missing",
			"[[worker]]\nname = \"a\"\nrate = 1e12\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:3: worker "a" rate: 1e+12: want a number ≥ 1e-08 and ≤ 1e+09 per second`}},
		{"a bad burst is one message, not two",
			"[[worker]]\nname = \"a\"\nrate = 3\nburst = 0.5\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:4: worker "a" burst: 0.5: want a whole number of jobs ≥ 1`}},
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

// buildExec decodes a sink table with a command list, as the exec sink does.
func buildExec(p *config.Plugin) (any, error) {
	var c struct {
		Subject string   `toml:"subject"`
		Command []string `toml:"command"`
	}
	return &c, p.Decode(&c)
}

func TestParseTypeErrors(t *testing.T) {
	t.Parallel()
	const src = "[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n"
	tests := []struct {
		name, data string
		want       []string // every error, in line order, as prefixes
	}{
		{"a rate in quotes, at its own line, and the valid key after it is not unknown",
			"[[worker]]\nname = \"a\"\nrate = \"20\"\nburst = 2\n" + src,
			[]string{`c.toml:3: worker "a" rate: "20" is a string: want a number of jobs per second, such as 20`}},
		{"max_in_flight in words",
			"[[worker]]\nname = \"a\"\nrate = 20\nmax_in_flight = \"ten\"\n" + src,
			[]string{`c.toml:4: worker "a" max_in_flight: "ten" is a string: want a whole number of jobs, such as 10`}},
		{"a mismatch in each of two workers, each at its own line",
			"[[worker]]\nname = \"a\"\nrate = \"20\"\n" + src + "[[worker]]\nname = \"b\"\nrate = 5\nmax_in_flight = 2.5\n" + src,
			[]string{`c.toml:3: worker "a" rate: "20" is a string`, `c.toml:11: worker "b" max_in_flight: 2.5 is not a whole number`}},
		{"an exec command as a string",
			"[[worker]]\nname = \"a\"\nrate = 2\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\ncommand = \"./x.sh\"\ntimeout = 3\n",
			[]string{`c.toml:8: worker "a" sink command: "./x.sh" is a string: want a list of strings, such as ["./x.sh"]`}},
		{"[worker] for [[worker]]",
			"[worker]\nname = \"a\"\nrate = 2\n" + src,
			[]string{`c.toml:1: worker: [worker] is one table: write [[worker]] (two brackets) before each worker`}},
		{"[[worker.source]] for [worker.source]",
			"[[worker]]\nname = \"a\"\nrate = 2\n[[worker.source]]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n",
			[]string{`c.toml:4: worker "a" source: [[worker.source]] is a list of tables: a worker has one source; write [worker.source] with one bracket`}},
		{"a top-level duration as a number",
			"drain_timeout = 30\n[[worker]]\nname = \"a\"\nrate = 2\n" + src,
			[]string{`c.toml:1: drain_timeout: 30 is a number: want a duration in quotes with a unit`}},
		{"burst written as 0",
			"[[worker]]\nname = \"a\"\nrate = 2\nburst = 0\n" + src,
			[]string{`c.toml:4: worker "a" burst: 0: 0 here means the default, 1; write 1, or leave burst out`}},
		{"burst 5.5",
			"[[worker]]\nname = \"a\"\nrate = 2\nburst = 5.5\n" + src,
			[]string{`c.toml:4: worker "a" burst: 5.5: want a whole number of jobs ≥ 1`}},
		{"a redis URL where host:port is wanted",
			"[redis]\naddr = \"redis://127.0.0.1:6379\"\n[[worker]]\nname = \"a\"\nrate = 2\n" + src,
			[]string{`c.toml:2: redis.addr: "redis://127.0.0.1:6379": want host:port without a scheme`}},
		{"a redis address without a port",
			"[redis]\naddr = \"localhost\"\n[[worker]]\nname = \"a\"\nrate = 2\n" + src,
			[]string{`c.toml:2: redis.addr: "localhost": want host:port`}},
		{"a NATS URL of another scheme",
			"[nats]\nurl = \"http://127.0.0.1:4222\"\n[[worker]]\nname = \"a\"\nrate = 2\n" + src,
			[]string{`c.toml:2: nats.url: scheme "http": want nats://, tls://, ws:// or wss://`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("dir/c.toml", tt.data, buildExec)
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
	if want := "c.toml:4: worker \"w\" storm_share: 2: want "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "storm_share") {
		t.Fatalf("Parse with storm_share = 2: %v; want an error starting %q that names storm_share", err, want)
	}
}

// latency_target takes "auto" (pacer.LatencyAuto) or a duration, and
// names what it wants when it gets neither.
func TestLatencyTargetAuto(t *testing.T) {
	t.Parallel()
	src := func(v string) string {
		return "[[worker]]\nname = \"w\"\nrate = 100\nlatency_target = " + v + "\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n"
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{`"auto"`, pacer.LatencyAuto, ""},
		{`"20ms"`, 20 * time.Millisecond, ""},
		{`"fast"`, 0, `"fast" is neither "auto" nor a duration`},
	} {
		f, err := config.Parse("c.toml", src(tc.in), build)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "latency_target") {
				t.Errorf("latency_target = %s: error %v, want one naming latency_target and saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("latency_target = %s: %v", tc.in, err)
			continue
		}
		if got := f.Workers[0].Pacer().LatencyTarget; got != tc.want {
			t.Errorf("latency_target = %s: pacer.Config.LatencyTarget %v, want %v", tc.in, got, tc.want)
		}
	}
}
