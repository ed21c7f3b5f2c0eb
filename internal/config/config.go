package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/pacer"
)

// Defaults of the top-level keys.
const (
	DefaultAdmin        = "127.0.0.1:9464"
	DefaultRedis        = "127.0.0.1:6379"
	DefaultNATS         = "nats://127.0.0.1:4222"
	DefaultStatusEvery  = 5 * time.Second
	DefaultDrainTimeout = 30 * time.Second
	// Embedded is the broker address that starts an in-process broker.
	Embedded = "embedded"
)

// File is a loaded and checked config file.
type File struct {
	Path         string   `toml:"-"`
	Admin        string   `toml:"admin"`         // host:port of /metrics and /status; "" turns it off
	LogFormat    string   `toml:"log_format"`    // text or json
	LogLevel     string   `toml:"log_level"`     // debug, info, warn, error
	StatusEvery  Duration `toml:"status_every"`  // period of the status log line; "0s" turns it off
	DrainTimeout Duration `toml:"drain_timeout"` // how long SIGTERM waits for in-flight jobs
	Redis        Redis    `toml:"redis"`
	NATS         NATS     `toml:"nats"`
	Demo         Demo     `toml:"demo"`
	// Fleets are the [fleet.NAME] tables, by name: limits shared through
	// Redis by every worker that names them.
	Fleets  map[string]Fleet `toml:"fleet"`
	Workers []Worker         `toml:"worker"`

	md  toml.MetaData
	pos *positions
}

// Redis says where the Redis server of Asynq sources and of fleets is.
type Redis struct {
	Addr     string `toml:"addr"` // host:port, or "embedded"
	Password string `toml:"password"`
	DB       int    `toml:"db"`
}

// NATS says where the NATS server of jetstream and nats sources is.
type NATS struct {
	URL      string `toml:"url"`       // nats://host:port, or "embedded"
	StoreDir string `toml:"store_dir"` // JetStream data of the embedded server; "" = a temporary directory
}

// Demo is a producer that feeds every worker's source, for demos.
type Demo struct {
	Rate    float64 `toml:"rate"`    // jobs per second per worker; 0 = off
	Payload string  `toml:"payload"` // job payload; "" = a small JSON document
}

// Fleet is a [fleet.NAME] table: one limit shared, through the Redis of
// [redis], by every worker that names it with fleet = "NAME", in this
// process and in every other pacer run on the same Redis (see package
// redisbucket). Rate is required; the other keys have the defaults of
// redisbucket.Config.
type Fleet struct {
	Name            string   `toml:"-"`                // the table's name, the bucket's key in Redis
	Rate            float64  `toml:"rate"`             // jobs per second for the whole fleet
	Burst           float64  `toml:"burst"`            // jobs at once after the fleet was idle; default 1
	ExpectedWorkers int      `toml:"expected_workers"` // processes sharing it; sets the share during an outage; 0 = last seen
	LeaseTime       Duration `toml:"lease_time"`       // default 100ms, in [1ms, 10s]
	RetryInterval   Duration `toml:"retry_interval"`   // default 500ms
	Timeout         Duration `toml:"timeout"`          // bound of each Redis call; default 250ms
	Prefix          string   `toml:"prefix"`           // of the Redis keys; default "pacer:fleet:"
}

// Bucket returns the redisbucket.Config of the fleet (without Logger and
// Clock).
func (fl *Fleet) Bucket() redisbucket.Config {
	return redisbucket.Config{
		Key: fl.Name, Rate: fl.Rate, Burst: fl.Burst, ExpectedWorkers: fl.ExpectedWorkers,
		LeaseTime: fl.LeaseTime.D(), RetryInterval: fl.RetryInterval.D(), Timeout: fl.Timeout.D(), Prefix: fl.Prefix,
	}
}

// Worker is one [[worker]]: a source, a sink and the pace between them.
type Worker struct {
	Name string `toml:"name"`
	// Fleet names a [fleet.NAME] table whose shared limit the worker obeys
	// after its own pace; "" = none.
	Fleet             string         `toml:"fleet"`
	Rate              float64        `toml:"rate"`
	Burst             float64        `toml:"burst"`
	Base              float64        `toml:"base"`
	BaseBurst         float64        `toml:"base_burst"`
	MinFactor         float64        `toml:"min_factor"`
	MaxFactor         float64        `toml:"max_factor"`
	MaxInFlight       int            `toml:"max_in_flight"`
	BacklogHigh       float64        `toml:"backlog_high"`
	BacklogTarget     Duration       `toml:"backlog_target"`
	Period            Duration       `toml:"period"`
	Cut               float64        `toml:"cut"`
	DefaultRetryAfter Duration       `toml:"default_retry_after"`
	AdjMap            []pacer.AdjRow `toml:"adjmap"`
	SourceRaw         toml.Primitive `toml:"source"`
	SinkRaw           toml.Primitive `toml:"sink"`

	Source *Plugin `toml:"-"`
	Sink   *Plugin `toml:"-"`
	Index  int     `toml:"-"` // position in the file, from 0
}

// Duration is a time.Duration written with its unit in the file ("10s",
// "250ms"); a bare number is an error, so 10 never silently means 10ns.
type Duration time.Duration

// UnmarshalText parses a duration with a unit.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: want a number with a unit, such as \"10s\" or \"250ms\"", b)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// Pacer returns the pacer.Config of the worker (without Probe, Limiter and
// Clock).
func (w *Worker) Pacer() pacer.Config {
	return pacer.Config{
		Rate: w.Rate, Burst: w.Burst, Base: w.Base, BaseBurst: w.BaseBurst,
		MinFactor: w.MinFactor, MaxFactor: w.MaxFactor, MaxInFlight: w.MaxInFlight,
		BacklogHigh: w.BacklogHigh, BacklogTarget: w.BacklogTarget.D(), Period: w.Period.D(),
		Cut: w.Cut, DefaultRetryAfter: w.DefaultRetryAfter.D(), AdjMap: slices.Clone(w.AdjMap),
	}
}

// Error is one problem in a config file, at a line and key.
type Error struct {
	File string
	Line int    // 0 if unknown
	Key  string // where in the file: `worker "emails" rate`
	Msg  string
}

// Error formats e as FILE:LINE: KEY: MSG.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Errors is every problem found in a config file, in line order.
type Errors []*Error

// Error joins the errors, one a line.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Plugin is the [worker.source] or [worker.sink] table of a worker: its
// kind and the settings its plugin decodes.
type Plugin struct {
	Section string // "source" or "sink"
	Worker  string // the worker's name
	kind    string
	path    string // indexed path: worker[0].sink
	prim    toml.Primitive
	f       *File
	// Built is what the build function passed to Load made of the table.
	Built any
}

// Kind returns the table's kind key.
func (p *Plugin) Kind() string { return p.kind }

// WorkerName returns the name of the worker the table belongs to.
func (p *Plugin) WorkerName() string { return p.Worker }

// Decode decodes the table's settings into v (a pointer to a struct with
// toml tags). Keys v has no field for are reported as unknown by Load.
func (p *Plugin) Decode(v any) error {
	if err := p.f.md.PrimitiveDecode(p.prim, v); err != nil {
		return p.f.decodeError(err, p.path)
	}
	return nil
}

// Errorf returns an error about key of the table that names the file and
// the line.
func (p *Plugin) Errorf(key, format string, args ...any) error {
	return p.f.errAt(p.path+"."+key, p.label(key), fmt.Sprintf(format, args...))
}

func (p *Plugin) label(key string) string {
	l := fmt.Sprintf("worker %q %s", p.Worker, p.Section)
	if key != "" {
		l += " " + key
	}
	return l
}

// Equal reports whether p and q hold the same settings.
func (p *Plugin) Equal(q *Plugin) bool {
	var a, b map[string]any
	_ = p.f.md.PrimitiveDecode(p.prim, &a)
	_ = q.f.md.PrimitiveDecode(q.prim, &b)
	return reflect.DeepEqual(a, b)
}

// BuildFunc makes something of a plugin table, or returns an error that
// says what is wrong with it (made with Plugin.Errorf or returned by
// Plugin.Decode, ideally).
type BuildFunc func(p *Plugin) (any, error)

// Load reads, decodes and checks the config file at path. It calls build
// for the source and sink table of each worker that passes the core
// checks; then keys that nothing decoded are errors. All problems come back
// as Errors, in line order.
func Load(path string, build BuildFunc) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, string(data), build)
}

// Parse is Load on a file's contents; path names the file in errors.
func Parse(path, data string, build BuildFunc) (*File, error) {
	f := &File{Path: path, pos: scanPositions(data)}
	name := filepath.Base(path)
	md, err := toml.Decode(data, f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			e := &Error{File: name, Line: pe.Position.Line, Msg: pe.Message}
			if pe.LastKey != "" {
				e.Key = pe.LastKey
				if ls := f.pos.plain[pe.LastKey]; e.Line == 0 && len(ls) > 0 {
					e.Line = ls[0]
				}
			}
			return nil, Errors{e}
		}
		return nil, Errors{{File: name, Msg: err.Error()}}
	}
	f.md = md
	var errs Errors
	add := func(err error) {
		if err == nil {
			return
		}
		var es Errors
		var e *Error
		switch {
		case errors.As(err, &es):
			errs = append(errs, es...)
		case errors.As(err, &e):
			errs = append(errs, e)
		default:
			errs = append(errs, &Error{File: name, Msg: err.Error()})
		}
	}
	f.defaults()
	add(f.checkTop())
	add(f.checkFleets())
	seen := map[string]int{}
	for i := range f.Workers {
		w := &f.Workers[i]
		w.Index = i
		at := fmt.Sprintf("worker[%d]", i)
		if w.Name == "" {
			add(f.errAt(at+".name", fmt.Sprintf("worker #%d name", i+1), "missing: every [[worker]] needs a name"))
			w.Name = fmt.Sprintf("#%d", i+1)
		} else if j, dup := seen[w.Name]; dup {
			add(f.errAt(at+".name", fmt.Sprintf("worker %q name", w.Name),
				fmt.Sprintf("duplicate: worker #%d (line %d) has this name too; names must be unique", j+1, f.pos.line(fmt.Sprintf("worker[%d].name", j)))))
		} else {
			seen[w.Name] = i
		}
		werrs := f.checkWorker(w)
		add(werrs)
		for _, sec := range []string{"source", "sink"} {
			p := &Plugin{Section: sec, Worker: w.Name, path: at + "." + sec, f: f}
			if sec == "source" {
				p.prim, w.Source = w.SourceRaw, p
			} else {
				p.prim, w.Sink = w.SinkRaw, p
			}
			var k struct {
				Kind string `toml:"kind"`
			}
			if err := p.Decode(&k); err != nil {
				add(err)
				continue
			}
			p.kind = k.Kind
			if k.Kind == "" {
				add(f.errAt(p.path, p.label(""), fmt.Sprintf("missing: add a [worker.%s] table with a kind after this [[worker]]", sec)))
				continue
			}
			if build != nil {
				v, err := build(p)
				if err != nil {
					add(err)
					continue
				}
				p.Built = v
			}
		}
	}
	for _, k := range md.Undecoded() {
		key := k.String()
		if key == "worker" || strings.HasSuffix(key, ".source") || strings.HasSuffix(key, ".sink") {
			continue // tables, not keys
		}
		lines := f.pos.plain[key]
		if len(lines) == 0 {
			lines = []int{0}
		}
		msg := "unknown key: check its spelling (see the config reference in README.md)"
		if k, ok := misplaced(key); ok {
			msg = fmt.Sprintf("unknown key: %s is a key of the [[worker]] itself; put it before the worker's [worker.source] and [worker.sink] tables, which take every key below them", k)
		}
		for _, l := range lines {
			add(&Error{File: name, Line: l, Key: key, Msg: msg})
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, errs
	}
	return f, nil
}

func (f *File) defaults() {
	if !f.md.IsDefined("admin") {
		f.Admin = DefaultAdmin
	}
	if f.LogFormat == "" {
		f.LogFormat = "text"
	}
	if f.LogLevel == "" {
		f.LogLevel = "info"
	}
	if !f.md.IsDefined("status_every") {
		f.StatusEvery = Duration(DefaultStatusEvery)
	}
	if f.DrainTimeout == 0 {
		f.DrainTimeout = Duration(DefaultDrainTimeout)
	}
	if f.Redis.Addr == "" {
		f.Redis.Addr = DefaultRedis
	}
	if f.NATS.URL == "" {
		f.NATS.URL = DefaultNATS
	}
	for name, fl := range f.Fleets {
		fl.Name = name
		if fl.Burst == 0 {
			fl.Burst = 1
		}
		if fl.LeaseTime == 0 {
			fl.LeaseTime = Duration(redisbucket.DefaultLeaseTime)
		}
		if fl.RetryInterval == 0 {
			fl.RetryInterval = Duration(redisbucket.DefaultRetryInterval)
		}
		if fl.Timeout == 0 {
			fl.Timeout = Duration(redisbucket.DefaultTimeout)
		}
		if fl.Prefix == "" {
			fl.Prefix = redisbucket.DefaultPrefix
		}
		f.Fleets[name] = fl
	}
	for i := range f.Workers {
		w := &f.Workers[i]
		if fl, ok := f.Fleets[w.Fleet]; ok && w.Fleet != "" && w.Rate == 0 && !f.hasKey(fmt.Sprintf("worker[%d].rate", i)) {
			w.Rate = fl.Rate // the worker may use the whole fleet's limit
		}
		if w.Burst == 0 {
			w.Burst = 1
		}
		if w.Base == 0 {
			w.Base = w.Rate
		}
		if w.BaseBurst == 0 {
			w.BaseBurst = w.Burst
		}
		if w.MinFactor == 0 {
			w.MinFactor = pacer.DefaultMinFactor
		}
		if w.MaxFactor == 0 {
			w.MaxFactor = pacer.DefaultMaxFactor
		}
		if w.BacklogTarget == 0 {
			w.BacklogTarget = Duration(10 * time.Second)
		}
		if w.Period == 0 {
			w.Period = Duration(time.Second)
		}
		if w.Cut == 0 {
			w.Cut = 0.5
		}
		if w.DefaultRetryAfter == 0 {
			w.DefaultRetryAfter = Duration(time.Second)
		}
		if w.AdjMap == nil {
			w.AdjMap = pacer.DefaultAdjMap()
		}
	}
}

func (f *File) checkTop() error {
	var errs Errors
	add := func(key, msg string) { errs = append(errs, f.errAt(key, key, msg)) }
	if f.Admin != "" {
		if _, _, err := net.SplitHostPort(f.Admin); err != nil {
			add("admin", fmt.Sprintf("%q is not host:port (such as %q); \"\" turns the admin server off", f.Admin, DefaultAdmin))
		}
	}
	if f.LogFormat != "text" && f.LogFormat != "json" {
		add("log_format", fmt.Sprintf("%q: want \"text\" or \"json\"", f.LogFormat))
	}
	switch f.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", fmt.Sprintf("%q: want debug, info, warn or error", f.LogLevel))
	}
	if f.StatusEvery < 0 {
		add("status_every", fmt.Sprintf("%v: want ≥ 0s (0s turns the status line off)", f.StatusEvery))
	}
	if f.DrainTimeout < 0 {
		add("drain_timeout", fmt.Sprintf("%v: want > 0s", f.DrainTimeout))
	}
	if f.Redis.DB < 0 {
		add("redis.db", fmt.Sprintf("%d: want ≥ 0", f.Redis.DB))
	}
	if r := f.Demo.Rate; math.IsNaN(r) || r < 0 || r > pacer.MaxRate {
		add("demo.rate", fmt.Sprintf("%g: want jobs per second in [0, %g] (0 turns the demo producer off)", r, float64(pacer.MaxRate)))
	}
	if len(f.Workers) == 0 {
		errs = append(errs, &Error{File: filepath.Base(f.Path), Msg: "no [[worker]]: add at least one worker (see the default config.toml)"})
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func (f *File) checkWorker(w *Worker) error {
	var errs Errors
	at := fmt.Sprintf("worker[%d]", w.Index)
	add := func(key string, v any, want string) {
		errs = append(errs, f.errAt(at+"."+key, fmt.Sprintf("worker %q %s", w.Name, key), fmt.Sprintf("%v: want %s", v, want)))
	}
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	rateOK := false
	fl, fleetOK := f.Fleets[w.Fleet]
	fleetOK = fleetOK && w.Fleet != ""
	switch {
	case w.Fleet != "" && !f.hasKey(at+".rate") && (!fleetOK || !(fl.Rate > 0 && fl.Rate <= pacer.MaxRate)):
		// rate defaults to the fleet's: the message about the fleet is enough.
	case w.Rate == 0 && !f.hasKey(at+".rate"):
		errs = append(errs, f.errAt(at, fmt.Sprintf("worker %q rate", w.Name), "missing: rate (the ceiling, jobs per second) is required, unless the worker names a fleet (then it defaults to the fleet's rate)"))
	case bad(w.Rate) || w.Rate <= 0 || w.Rate > pacer.MaxRate:
		add("rate", w.Rate, fmt.Sprintf("jobs per second in (0, %g]", float64(pacer.MaxRate)))
	default:
		rateOK = true
	}
	if bad(w.Burst) || w.Burst < 1 {
		add("burst", w.Burst, "jobs ≥ 1")
	}
	if !rateOK && !f.hasKey(at+".base") {
		// base defaults to rate: one message about rate is enough.
	} else if bad(w.Base) || w.Base <= 0 {
		add("base", w.Base, "jobs per second > 0")
	} else if rateOK && w.Base > w.Rate {
		add("base", w.Base, fmt.Sprintf("≤ rate (%g): the ceiling caps the pace", w.Rate))
	}
	burstOK := !bad(w.Burst) && w.Burst >= 1
	switch {
	case !burstOK && !f.hasKey(at+".base_burst"):
		// base_burst defaults to burst: one message about burst is enough.
	case bad(w.BaseBurst) || w.BaseBurst < 1:
		add("base_burst", w.BaseBurst, "jobs ≥ 1")
	case w.BaseBurst > w.Burst:
		add("base_burst", w.BaseBurst, fmt.Sprintf("≤ burst (%g): the ceiling caps bursts (base_burst defaults to burst)", w.Burst))
	}
	if w.Fleet != "" || f.hasKey(at+".fleet") {
		if !fleetOK {
			msg := fmt.Sprintf("%q: no [fleet.%s] table in the file; add one with the fleet's rate (see \"A limit shared by a fleet\" in README.md)", w.Fleet, tomlKey(w.Fleet))
			if w.Fleet == "" {
				msg = `"": name a [fleet.NAME] table, or leave fleet out`
			}
			if names := f.fleetNames(); len(names) > 0 {
				msg += "; defined: " + strings.Join(names, ", ")
			}
			errs = append(errs, f.errAt(at+".fleet", fmt.Sprintf("worker %q fleet", w.Name), msg))
		}
	}
	switch {
	case bad(w.MinFactor) || w.MinFactor <= 0:
		add("min_factor", w.MinFactor, "a number > 0")
	case bad(w.MaxFactor) || w.MaxFactor <= 0:
		add("max_factor", w.MaxFactor, "a number > 0")
	case w.MinFactor > w.MaxFactor:
		add("min_factor", w.MinFactor, fmt.Sprintf("≤ max_factor (%g)", w.MaxFactor))
	case w.MinFactor > 1:
		add("min_factor", w.MinFactor, "≤ 1: the factor starts at 1")
	case w.MaxFactor < 1:
		add("max_factor", w.MaxFactor, "≥ 1: the factor starts at 1")
	}
	if w.MaxInFlight < 0 {
		add("max_in_flight", w.MaxInFlight, "jobs ≥ 0 (0: no cap)")
	}
	if bad(w.BacklogHigh) || w.BacklogHigh < 0 {
		add("backlog_high", w.BacklogHigh, "jobs ≥ 0 (0: backlog_target × base)")
	}
	if w.BacklogTarget < 0 {
		add("backlog_target", w.BacklogTarget, "a duration > 0s")
	}
	if w.Period <= 0 {
		add("period", w.Period, "a duration > 0s")
	}
	if bad(w.Cut) || w.Cut <= 0 || w.Cut > 1 {
		add("cut", w.Cut, "a factor in (0, 1]")
	}
	if w.DefaultRetryAfter < 0 {
		add("default_retry_after", w.DefaultRetryAfter, "a duration > 0s")
	}
	if e := f.checkAdjMap(w); e != nil {
		errs = append(errs, e)
	}
	if len(errs) == 0 && rateOK {
		// Whatever else the core objects to.
		if _, err := pacer.New(w.Pacer()); err != nil {
			errs = append(errs, f.errAt(at, fmt.Sprintf("worker %q", w.Name), err.Error()))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func (f *File) fleetNames() []string {
	var names []string
	for n := range f.Fleets {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	return names
}

// tomlKey returns name as a TOML key: bare if it can be, else quoted.
func tomlKey(name string) string {
	if name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return name
	}
	return strconv.Quote(name)
}

func (f *File) checkFleets() error {
	var errs Errors
	for _, name := range slices.Sorted(maps.Keys(f.Fleets)) {
		fl := f.Fleets[name]
		at := "fleet." + name
		add := func(key string, v any, want string) {
			errs = append(errs, f.errAt(at+"."+key, fmt.Sprintf("fleet %q %s", name, key), fmt.Sprintf("%v: want %s", v, want)))
		}
		if name == "" {
			errs = append(errs, f.errAt(at, `fleet ""`, "an empty fleet name: name it [fleet.NAME]; NAME is the key of the shared limit in Redis"))
		}
		switch r := fl.Rate; {
		case r == 0 && !f.hasKey(at+".rate"):
			errs = append(errs, f.errAt(at, fmt.Sprintf("fleet %q rate", name), "missing: rate (jobs per second for the whole fleet) is required"))
		case math.IsNaN(r) || r <= 0 || r > pacer.MaxRate:
			add("rate", r, fmt.Sprintf("jobs per second in (0, %g], for the whole fleet", float64(pacer.MaxRate)))
		}
		if b := fl.Burst; math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 {
			add("burst", b, "jobs > 0")
		}
		if fl.ExpectedWorkers < 0 {
			add("expected_workers", fl.ExpectedWorkers, "processes ≥ 0 (0: the count last seen in Redis)")
		}
		if d := fl.LeaseTime.D(); d < time.Millisecond || d > 10*time.Second {
			add("lease_time", fl.LeaseTime, "a duration in [1ms, 10s]")
		}
		if fl.RetryInterval <= 0 {
			add("retry_interval", fl.RetryInterval, "a duration > 0s")
		}
		if fl.Timeout <= 0 {
			add("timeout", fl.Timeout, "a duration > 0s")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// misplaced reports whether an unknown key is a worker's own key written
// inside its source or sink table (TOML puts every key below a table
// header into that table), and returns the key.
func misplaced(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "worker.")
	if !ok {
		return "", false
	}
	_, k, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(k, ".") || !strings.HasPrefix(rest, "source.") && !strings.HasPrefix(rest, "sink.") {
		return "", false
	}
	t := reflect.TypeFor[Worker]()
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag == k && tag != "source" && tag != "sink" {
			return k, true
		}
	}
	return "", false
}

func (f *File) checkAdjMap(w *Worker) *Error {
	m := w.AdjMap
	key := fmt.Sprintf("worker[%d].adjmap", w.Index)
	label := func(i int, k string) string { return fmt.Sprintf("worker %q adjmap row %d %s", w.Name, i+1, k) }
	if len(m) == 0 {
		return f.errAt(key, fmt.Sprintf("worker %q adjmap", w.Name), "empty: want rows descending in min_cap, ending in a catch-all row with min_cap = 0 (or leave adjmap out for the defaults)")
	}
	for i, r := range m {
		row := fmt.Sprintf("%s[%d]", key, i)
		if i > 0 && r.MinCap >= m[i-1].MinCap {
			return f.errAt(row, label(i, "min_cap"), fmt.Sprintf("%g: want < %g (the row before): rows must descend in min_cap", r.MinCap, m[i-1].MinCap))
		}
		if r.LBound < 0 || r.LBound >= r.UBound || r.UBound > 1 {
			return f.errAt(row, label(i, "lbound, ubound"), fmt.Sprintf("%g, %g: want 0 ≤ lbound < ubound ≤ 1", r.LBound, r.UBound))
		}
		if r.LFactor < 1 {
			return f.errAt(row, label(i, "lfactor"), fmt.Sprintf("%g: want ≥ 1", r.LFactor))
		}
		if r.UFactor <= 0 || r.UFactor > 1 {
			return f.errAt(row, label(i, "ufactor"), fmt.Sprintf("%g: want a factor in (0, 1]", r.UFactor))
		}
	}
	if last := m[len(m)-1]; last.MinCap > 0 {
		return f.errAt(fmt.Sprintf("%s[%d]", key, len(m)-1), label(len(m)-1, "min_cap"), fmt.Sprintf("%g: want 0 in the last row, a catch-all row (without one, small buckets never adapt)", last.MinCap))
	}
	if err := pacer.CheckAdjMap(m); err != nil {
		return f.errAt(key, fmt.Sprintf("worker %q adjmap", w.Name), err.Error())
	}
	return nil
}

func (f *File) hasKey(path string) bool { _, ok := f.pos.at[path]; return ok }

// errAt returns an error at the line of path (indexed), labelled label.
func (f *File) errAt(path, label, msg string) *Error {
	return &Error{File: filepath.Base(f.Path), Line: f.pos.line(path), Key: label, Msg: msg}
}

// decodeError turns an error of decoding the table at path into an Error
// with a line.
func (f *File) decodeError(err error, path string) error {
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.LastKey != "" {
		// LastKey has no indexes ("worker.sink.timeout"); take what
		// follows the table's own unindexed path.
		rest := strings.TrimPrefix(strings.TrimPrefix(pe.LastKey, unindex(path)), ".")
		return f.errAt(path+"."+rest, pe.LastKey, pe.Message)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "toml: ")
	return f.errAt(path, path, msg)
}

// Line returns the line of the indexed key path (such as
// "worker[0].rate"), of its nearest enclosing table if the key is not in
// the file, or 0.
func (f *File) Line(path string) int { return f.pos.line(path) }
