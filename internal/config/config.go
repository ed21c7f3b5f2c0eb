package config

import (
	"errors"
	"fmt"
	"io"
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
	"syscall"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/redact"
	"github.com/jobpacer/pacer/pacer"
)

// Defaults of the top-level keys.
const (
	DefaultAdmin        = "127.0.0.1:9464"
	DefaultRedis        = "127.0.0.1:6379"
	DefaultNATS         = "nats://127.0.0.1:4222"
	DefaultStatusEvery  = 5 * time.Second
	DefaultDrainTimeout = 30 * time.Second
	// DefaultRecoverTimeout is how long a worker may stay down (its
	// source failed and cannot be restarted) before pacer run exits 1.
	DefaultRecoverTimeout = 5 * time.Minute
	// Embedded is the broker address that starts an in-process broker.
	Embedded = "embedded"
)

// Bounds of the top-level settings, and of the file.
const (
	// MaxWorkers is the most [[worker]] tables a file may have: each holds
	// connections, goroutines and file descriptors.
	MaxWorkers = 256
	// MinStatusEvery is the shortest status_every other than 0s.
	MinStatusEvery = time.Second
	// MaxDrainTimeout is the longest drain_timeout.
	MaxDrainTimeout = time.Hour
	// MinRecoverTimeout and MaxRecoverTimeout bound recover_timeout.
	MinRecoverTimeout = time.Second
	MaxRecoverTimeout = 24 * time.Hour
	// MaxFileSize is the largest config file Load reads.
	MaxFileSize = 1 << 20
)

// File is a loaded and checked config file.
type File struct {
	Path  string `toml:"-"`
	Admin string `toml:"admin"` // host:port of /metrics and /status; "" turns it off
	// AdminPprof serves net/http/pprof at /debug/pprof/ on the admin
	// address, to loopback clients only; the admin address must then be
	// a loopback one (LoopbackAddr).
	AdminPprof   bool     `toml:"admin_pprof"`
	LogFormat    string   `toml:"log_format"`    // text or json
	LogLevel     string   `toml:"log_level"`     // debug, info, warn, error
	StatusEvery  Duration `toml:"status_every"`  // period of the status log line; "0s" turns it off
	DrainTimeout Duration `toml:"drain_timeout"` // how long SIGTERM waits for in-flight jobs
	// RecoverTimeout is how long a worker whose source failed may stay
	// down, restarted with backoff, before pacer run exits 1.
	RecoverTimeout Duration `toml:"recover_timeout"`
	Redis          Redis    `toml:"redis"`
	NATS           NATS     `toml:"nats"`
	Demo           Demo     `toml:"demo"`
	// Fleets are the [fleet.NAME] tables, by name: limits shared through
	// Redis by every worker that names them.
	Fleets  map[string]Fleet `toml:"fleet"`
	Workers []Worker         `toml:"worker"`

	md      toml.MetaData
	raw     map[string]any // the file decoded into plain values
	pos     *positions
	fleetOK map[string]bool // fleets whose settings passed redisbucket's checks
}

// Redis says where the Redis server of Asynq sources and of fleets is, and
// how to log in. One of addr, url, cluster_addrs and sentinel names the
// server (addr by default). Every string may hold ${NAME}, replaced by the
// environment variable NAME when the file loads (see docs/connections.md).
type Redis struct {
	Addr         string   `toml:"addr"`          // host:port, or "embedded"
	URL          string   `toml:"url"`           // redis://[user:password@]host:port[/db], or rediss:// for TLS
	ClusterAddrs []string `toml:"cluster_addrs"` // seed nodes of a Redis Cluster, host:port
	Sentinel     Sentinel `toml:"sentinel"`      // a primary found through Redis Sentinel
	Username     string   `toml:"username"`      // ACL user; "" = default
	Password     string   `toml:"password"`
	DB           int      `toml:"db"`
	TLS          TLS      `toml:"tls"`
}

// Sentinel is the [redis.sentinel] table: the primary named Master, found
// through the sentinels at Addrs.
type Sentinel struct {
	Master   string   `toml:"master"`   // the name the sentinels monitor
	Addrs    []string `toml:"addrs"`    // sentinels, host:port
	Username string   `toml:"username"` // of the sentinels, if they ask for one
	Password string   `toml:"password"` // of the sentinels, if they ask for one
}

// TLS is a [redis.tls] or [nats.tls] table. Any key turns TLS on; with no
// CA the system's roots verify the server.
type TLS struct {
	Enabled    bool   `toml:"enabled"`     // TLS with the system's roots and no other key
	CA         string `toml:"ca"`          // PEM file of the CA that signed the server's certificate
	Cert       string `toml:"cert"`        // PEM file of the client certificate, with key
	Key        string `toml:"key"`         // PEM file of the client certificate's key
	ServerName string `toml:"server_name"` // name to verify the server's certificate against; "" = the host dialled
}

// On reports whether any key of the table asks for TLS.
func (t TLS) On() bool {
	return t.Enabled || t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != ""
}

// NATS says where the NATS server (or cluster) of jetstream and nats
// sources is, and how to log in: at most one of creds, nkey, user and
// token. Every string may hold ${NAME}, replaced by the environment
// variable NAME when the file loads.
type NATS struct {
	URL      string   `toml:"url"`       // nats://host:port (several comma-separated), or "embedded"
	URLs     []string `toml:"urls"`      // servers of a cluster; instead of url
	StoreDir string   `toml:"store_dir"` // JetStream data of the embedded server; "" = a temporary directory
	Creds    string   `toml:"creds"`     // a .creds file (user JWT and nkey seed)
	NKey     string   `toml:"nkey"`      // a file holding an nkey seed (SU...), or the seed itself
	User     string   `toml:"user"`
	Password string   `toml:"password"`
	Token    string   `toml:"token"`
	TLS      TLS      `toml:"tls"`
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
	Burst           float64  `toml:"burst"`            // jobs at once after the fleet was idle
	ExpectedWorkers int      `toml:"expected_workers"` // processes sharing it; sets the share during an outage; 0 = last seen
	LeaseTime       Duration `toml:"lease_time"`       // how long's worth of its share a process leases
	RetryInterval   Duration `toml:"retry_interval"`   // retry period in fallback
	Timeout         Duration `toml:"timeout"`          // bound of each Redis call
	Prefix          string   `toml:"prefix"`           // of the Redis keys

	// Settings is the fleet's redisbucket.Config with redisbucket's
	// defaults applied (without Logger and Clock), set by Load.
	Settings redisbucket.Config `toml:"-"`
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
	Rate              float64        `toml:"rate" want:"a number of jobs per second, such as 20"`
	Burst             float64        `toml:"burst" want:"a whole number of jobs, such as 5"`
	Base              float64        `toml:"base" want:"a number of jobs per second, such as 5"`
	BaseBurst         float64        `toml:"base_burst"`
	MinFactor         float64        `toml:"min_factor"`
	MaxFactor         float64        `toml:"max_factor"`
	MaxInFlight       int            `toml:"max_in_flight" want:"a whole number of jobs, such as 10 (0: no cap)"`
	BacklogHigh       float64        `toml:"backlog_high"`
	BacklogTarget     Duration       `toml:"backlog_target"`
	Period            Duration       `toml:"period"`
	Cut               float64        `toml:"cut"`
	DefaultRetryAfter Duration       `toml:"default_retry_after"`
	PauseAfter        Duration       `toml:"pause_after"`
	StormShare        float64        `toml:"storm_share"`
	LatencyTarget     Latency        `toml:"latency_target"`
	AdjMap            []pacer.AdjRow `toml:"adjmap"`
	SourceRaw         toml.Primitive `toml:"source"`
	SinkRaw           toml.Primitive `toml:"sink"`

	Source *Plugin `toml:"-"`
	Sink   *Plugin `toml:"-"`
	Index  int     `toml:"-"` // position in the file, from 0
	// Settings is the worker's pacer.Config with package pacer's defaults
	// applied: the pace it runs at. Set by Load.
	Settings pacer.Config `toml:"-"`
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

// Latency is a worker's latency_target: a duration with its unit, or
// "auto" (pacer.LatencyAuto): a learned concurrency limit held near the
// downstream's no-load latency.
type Latency time.Duration

// UnmarshalText parses a duration with a unit, or "auto".
func (l *Latency) UnmarshalText(b []byte) error {
	if string(b) == "auto" {
		*l = Latency(pacer.LatencyAuto)
		return nil
	}
	var d Duration
	if err := d.UnmarshalText(b); err != nil {
		return fmt.Errorf("%q is neither \"auto\" nor a duration: want \"auto\" or a number with a unit, such as \"50ms\"", b)
	}
	*l = Latency(d)
	return nil
}

// String formats l as it is written: "auto" or a duration.
func (l Latency) String() string {
	if time.Duration(l) == pacer.LatencyAuto {
		return "auto"
	}
	return time.Duration(l).String()
}

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
		PauseAfter: w.PauseAfter.D(), StormShare: w.StormShare, LatencyTarget: time.Duration(w.LatencyTarget),
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
	Built   any
	failed  bool           // the build function returned an error
	decoded []reflect.Type // what Decode decoded the table into: its known keys
}

// Kind returns the table's kind key.
func (p *Plugin) Kind() string { return p.kind }

// WorkerName returns the name of the worker the table belongs to.
func (p *Plugin) WorkerName() string { return p.Worker }

// Decode decodes the table's settings into v (a pointer to a struct with
// toml tags). Keys v has no field for are reported as unknown by Load.
func (p *Plugin) Decode(v any) error {
	// The table as plain values, from the first decode: a PrimitiveDecode
	// into a map would mark every key as read and hide the unknown ones.
	if raw, ok := p.f.rawAt(p.path).(map[string]any); ok {
		if t := reflect.TypeOf(v); t != nil && t.Kind() == reflect.Pointer {
			p.decoded = append(p.decoded, t.Elem())
			if errs := p.f.typeErrors(raw, t.Elem(), p.path, p.label("")); len(errs) > 0 {
				return errs
			}
		}
	}
	if err := p.f.md.PrimitiveDecode(p.prim, v); err != nil {
		return p.f.decodeError(err, p.path)
	}
	return nil
}

// fieldError maps an error of the plugin's build function to the line of
// the key it names: a *pacer.FieldError's Field, or an Error as it is.
func (p *Plugin) fieldError(err error) error {
	var e *Error
	var es Errors
	if errors.As(err, &e) || errors.As(err, &es) {
		return err
	}
	return p.f.fieldError(err, p.path, p.label(""))
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
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, build)
}

// readFile reads the config file at path without blocking: a named pipe,
// a device or a directory is refused before anything is read (opening a
// FIFO with no writer, or reading /dev/zero, would never end), and so is
// a file larger than MaxFileSize.
func readFile(path string) (string, error) {
	// O_NONBLOCK: opening a FIFO returns at once instead of waiting for a
	// writer; the Stat of what was opened then refuses it. It does not
	// change how a regular file reads.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer fh.Close()
	name := filepath.Base(path)
	fi, err := fh.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", Errors{{File: name, Msg: fmt.Sprintf("%s, not a regular file: want a config file (a FIFO, a device or a directory is not read)", fileKind(fi.Mode()))}}
	}
	if fi.Size() > MaxFileSize {
		return "", Errors{{File: name, Msg: fmt.Sprintf("%d bytes, larger than %d: want a config file of at most 1 MiB", fi.Size(), MaxFileSize)}}
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFileSize { // it grew since the Stat
		return "", Errors{{File: name, Msg: fmt.Sprintf("larger than %d bytes: want a config file of at most 1 MiB", MaxFileSize)}}
	}
	return string(data), nil
}

// fileKind names the kind of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// Parse is Load on a file's contents; path names the file in errors.
//
// It reports in rounds, so that no error follows from another: a TOML
// syntax error alone; else every value of the wrong type, each at its own
// line; else every bad setting and unknown key. The rules and defaults of
// a worker's pace are package pacer's, of a fleet package redisbucket's,
// of a source or sink its plugin's: Parse maps the *pacer.FieldError they
// return to the line of its key and never checks those rules itself.
func Parse(path, data string, build BuildFunc) (*File, error) {
	name := filepath.Base(path)
	if len(data) > MaxFileSize {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("larger than %d bytes: want a config file of at most 1 MiB", MaxFileSize)}}
	}
	// Before the decoder, whose cost grows with the square of the depth.
	if e := checkNesting(name, data); e != nil {
		return nil, Errors{e}
	}
	f := &File{Path: path, pos: scanPositions(data)}
	var raw map[string]any
	if _, err := toml.Decode(data, &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			e := &Error{File: name, Line: pe.Position.Line, Msg: hideSecret(pe.LastKey, pe.Message)}
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
	f.raw = raw
	if errs := f.typeErrors(raw, reflect.TypeFor[File](), "", ""); len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, errs
	}
	md, err := toml.Decode(data, f)
	if err != nil { // typeErrors missed a mismatch: the decoder's words, at its line
		return nil, f.decodeError(err, "")
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
	add(f.expandEnv())
	f.defaults()
	add(f.checkTop())
	add(f.checkBrokers())
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
		add(f.checkWorker(w))
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
					p.failed = true
					add(p.fieldError(err))
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
		if f.failedTable(key) {
			continue // a table whose plugin failed: its keys are not unknown, only unread
		}
		lines := f.pos.plain[key]
		if len(lines) == 0 {
			lines = []int{0}
		}
		msg := "unknown key: check its spelling (see docs/config.md)"
		if s := f.suggestion(key); s != "" {
			msg = "unknown key: " + s + " (see docs/config.md)"
		}
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

// rawAt returns the plain value at an indexed path ("worker[1].sink"),
// or nil.
func (f *File) rawAt(path string) any {
	var v any = f.raw
	for part := range strings.SplitSeq(path, ".") {
		name, idx, indexed := strings.Cut(part, "[")
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[name]
		if indexed {
			i, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if err != nil {
				return nil
			}
			switch a := v.(type) {
			case []map[string]any:
				if i >= len(a) {
					return nil
				}
				v = a[i]
			case []any:
				if i >= len(a) {
					return nil
				}
				v = a[i]
			default:
				return nil
			}
		}
	}
	return v
}

// failedTable reports whether key (unindexed, such as
// "worker.sink.timeout") is in a source or sink table that failed to
// build, in which case its plugin stopped before reading every key.
func (f *File) failedTable(key string) bool {
	for _, w := range f.Workers {
		for _, p := range []*Plugin{w.Source, w.Sink} {
			if p != nil && p.failed && strings.HasPrefix(key, "worker."+p.Section+".") {
				return true
			}
		}
	}
	return false
}

// defaults applies the defaults of the CLI's own top-level settings. The
// defaults of a worker's pace and of a fleet are their packages' (see
// checkWorker).
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
	if f.RecoverTimeout == 0 {
		f.RecoverTimeout = Duration(DefaultRecoverTimeout)
	}
	if f.Redis.Addr == "" && f.Redis.URL == "" && len(f.Redis.ClusterAddrs) == 0 && f.Redis.Sentinel.Master == "" {
		f.Redis.Addr = DefaultRedis
	}
	if f.NATS.URL == "" && len(f.NATS.URLs) == 0 {
		f.NATS.URL = DefaultNATS
	}
	for name, fl := range f.Fleets {
		fl.Name = name
		f.Fleets[name] = fl
	}
	for i := range f.Workers {
		w := &f.Workers[i]
		if fl, ok := f.Fleets[w.Fleet]; ok && w.Fleet != "" && !f.hasKey(fmt.Sprintf("worker[%d].rate", i)) {
			w.Rate = fl.Rate // the worker may use the whole fleet's limit
		}
	}
}

func (f *File) checkTop() error {
	var errs Errors
	add := func(key, msg string) { errs = append(errs, f.errAt(key, key, msg)) }
	if f.Admin != "" {
		if err := checkHostPort(f.Admin); err != nil {
			add("admin", fmt.Sprintf("%q: %v (such as %q); \"\" turns the admin server off", f.Admin, err, DefaultAdmin))
		}
	}
	if f.AdminPprof && f.Admin != "" && !LoopbackAddr(f.Admin) {
		add("admin_pprof", fmt.Sprintf("true with admin = %q: /debug/pprof/ is served on a loopback address only (such as %q); "+
			"bind admin to 127.0.0.1, [::1] or localhost, or leave admin_pprof out", f.Admin, DefaultAdmin))
	}
	if f.LogFormat != "text" && f.LogFormat != "json" {
		add("log_format", fmt.Sprintf("%q: want \"text\" or \"json\"", f.LogFormat))
	}
	switch f.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", fmt.Sprintf("%q: want debug, info, warn or error", f.LogLevel))
	}
	if f.StatusEvery != 0 && (f.StatusEvery.D() < MinStatusEvery) {
		add("status_every", fmt.Sprintf("%v: want ≥ %v, or 0s to turn the status line off", f.StatusEvery, MinStatusEvery))
	}
	if d := f.DrainTimeout.D(); d < 0 || d > MaxDrainTimeout {
		add("drain_timeout", fmt.Sprintf("%v: want a duration in (0s, %v]", f.DrainTimeout, MaxDrainTimeout))
	}
	if d := f.RecoverTimeout.D(); d < MinRecoverTimeout || d > MaxRecoverTimeout {
		add("recover_timeout", fmt.Sprintf("%v: want a duration in [%v, %v]", f.RecoverTimeout, MinRecoverTimeout, MaxRecoverTimeout))
	}
	if f.Redis.Addr != "" && f.Redis.Addr != Embedded { // the other forms: checkBrokers
		if err := checkHostPort(f.Redis.Addr); err != nil {
			if strings.Contains(f.Redis.Addr, "@") { // a URL, or user:password@: the parts may quote the password
				err = errors.New("want host:port, without a user or password (a redis:// URL goes in url)")
			}
			add("redis.addr", fmt.Sprintf("%q: %v, such as \"127.0.0.1:6379\", or \"embedded\"", redact.URL(f.Redis.Addr), err))
		}
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
	if n := len(f.Workers); n > MaxWorkers {
		errs = append(errs, f.errAt(fmt.Sprintf("worker[%d]", MaxWorkers), "worker", fmt.Sprintf("%d [[worker]] tables: want at most %d in one process (run more processes, sharing a fleet limit)", n, MaxWorkers)))
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// checkHostPort checks a host:port address the way a dial would take it.
// LoopbackAddr reports whether addr, a host:port, binds only a loopback
// interface: its host is localhost or a loopback IP. An empty host,
// 0.0.0.0, [::] and any other name are not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkHostPort(addr string) error {
	if strings.Contains(addr, "://") {
		return errors.New("want host:port without a scheme")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number in [0, 65535]", port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q is not a host name or address", host)
	}
	return nil
}

// checkWorker checks the worker's own keys: its name, its fleet, and its
// pace, whose rules and defaults are package pacer's. On success the
// worker's Settings hold the pace it runs at.
func (f *File) checkWorker(w *Worker) error {
	var errs Errors
	at := fmt.Sprintf("worker[%d]", w.Index)
	label := fmt.Sprintf("worker %q", w.Name)
	_, fleetOK := f.Fleets[w.Fleet]
	fleetOK = fleetOK && w.Fleet != ""
	if w.Fleet != "" || f.hasKey(at+".fleet") {
		if !fleetOK {
			msg := fmt.Sprintf("%q: no [fleet.%s] table in the file; add one with the fleet's rate (see docs/fleet.md)", w.Fleet, tomlKey(w.Fleet))
			if w.Fleet == "" {
				msg = `"": name a [fleet.NAME] table, or leave fleet out`
			}
			if names := f.fleetNames(); len(names) > 0 {
				msg += "; defined: " + strings.Join(names, ", ")
			}
			errs = append(errs, f.errAt(at+".fleet", label+" fleet", msg))
		}
	}
	if w.Fleet != "" && !f.hasKey(at+".rate") && (!fleetOK || !f.fleetOK[w.Fleet]) {
		// rate defaults to the fleet's: the message about the fleet is enough.
		return errOrNil(errs)
	}
	s, bad := checkEach(f, w.Pacer(), pacer.Config.WithDefaults, at, label)
	if len(bad) > 0 {
		errs = append(errs, bad...)
	} else if e := f.zeroKeys(w.Pacer(), s, at, label); e != nil {
		errs = append(errs, e)
	} else {
		w.Settings = s
	}
	return errOrNil(errs)
}

// checkEach checks raw (a package's settings struct, whose toml tags name
// the keys) with its package's withDefaults, which names the first bad
// field only. It checks again with each bad key set to its zero value
// (the default, as if the key were left out) until nothing is wrong, so
// that one pacer check reports every bad key of a table. It stops at a key
// that is bad when zero (a required one) or named twice.
func checkEach[T any](f *File, raw T, withDefaults func(T) (T, error), at, label string) (T, Errors) {
	var errs Errors
	zeroed := map[string]bool{}
	for {
		s, err := withDefaults(raw)
		if err == nil {
			return s, errs
		}
		var fe *pacer.FieldError
		if !errors.As(err, &fe) {
			return s, append(errs, f.fieldError(err, at, label))
		}
		if len(errs) > 0 && mentionsAny(fe, zeroed) {
			// The key zeroed is required (its first error said so), or
			// this error is about the default it took, not the file.
			return s, errs
		}
		errs = append(errs, f.fieldError(err, at, label))
		key := f.fieldKey(fe.Field, at)
		if !zeroField(&raw, key) {
			return s, errs
		}
		zeroed[key] = true
	}
}

// mentionsAny reports whether fe's field or what it wants names one of
// keys ("want ≤ burst (1)" names burst).
func mentionsAny(fe *pacer.FieldError, keys map[string]bool) bool {
	words := strings.FieldsFunc(fe.Field+" "+fe.Want, func(r rune) bool {
		return r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	return slices.ContainsFunc(words, func(w string) bool { return keys[w] })
}

// zeroField sets the field of *v whose toml key is key to its zero value,
// and reports whether it was set to something else before.
func zeroField(v any, key string) bool {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		if k, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("toml"), ","); k == key {
			f := rv.Field(i)
			if f.IsZero() || !f.CanSet() {
				return false
			}
			f.SetZero()
			return true
		}
	}
	return false
}

func errOrNil(errs Errors) error {
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// zeroKeys returns an error for the first key of raw written in the file
// as 0 that the package's defaults turn into something else: 0 there means
// "the default", which a reader of burst = 0 would not guess.
func (f *File) zeroKeys(raw, filled any, at, label string) *Error {
	rv, fv := reflect.ValueOf(raw), reflect.ValueOf(filled)
	for i := range rv.NumField() {
		key, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("toml"), ",")
		if key == "" || key == "-" || !f.hasKey(at+"."+key) {
			continue
		}
		if rv.Field(i).IsZero() && !fv.Field(i).IsZero() {
			d := fv.Field(i).Interface()
			if dd, ok := d.(time.Duration); ok {
				d = fmt.Sprintf("%q", dd.String())
			}
			return f.errAt(at+"."+key, label+" "+key, fmt.Sprintf("%v: 0 here means the default, %v; write %v, or leave %s out", rv.Field(i).Interface(), d, d, key))
		}
	}
	return nil
}

// fieldError maps an error of a package's check (a *pacer.FieldError
// whose Field is a TOML key below the table at) to the key's line.
func (f *File) fieldError(err error, at, label string) *Error {
	var fe *pacer.FieldError
	if !errors.As(err, &fe) {
		return f.errAt(at, label, err.Error())
	}
	key := f.fieldKey(fe.Field, at) // "burst / rate": the line of burst, if written
	if !f.hasKey(at+"."+key) && !strings.ContainsAny(fe.Field, " [") {
		return f.errAt(at+"."+key, label+" "+key, fmt.Sprintf("missing: %s is required: want %s", key, fe.Want))
	}
	return f.errAt(at+"."+key, label+" "+fe.Field, fmt.Sprintf("%v: want %s", fe.Value, fe.Want))
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

// checkFleets checks each [fleet.NAME] table with package redisbucket's
// rules and keeps its settings in Settings.
func (f *File) checkFleets() error {
	var errs Errors
	f.fleetOK = map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(f.Fleets)) {
		fl := f.Fleets[name]
		at := "fleet." + name
		label := fmt.Sprintf("fleet %q", name)
		if name == "" {
			errs = append(errs, f.errAt(at, `fleet ""`, "an empty fleet name: name it [fleet.NAME]; NAME is the key of the shared limit in Redis"))
			continue
		}
		raw := fl.Bucket()
		s, bad := checkEach(f, raw, redisbucket.Config.WithDefaults, at, label)
		if len(bad) == 0 {
			if e := f.zeroKeys(raw, s, at, label); e != nil {
				errs = append(errs, e)
				continue
			}
			s.Logger, s.Clock = nil, nil
			fl.Settings = s
			f.Fleets[name] = fl
			f.fleetOK[name] = true
			continue
		}
		errs = append(errs, bad...)
	}
	return errOrNil(errs)
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

// fieldKey is the key of a FieldError's Field below the table at. For a
// field that relates two ("burst / rate", "min_factor, max_factor") it is
// the first of them written in the file, else the first.
func (f *File) fieldKey(field, at string) string {
	keys := strings.FieldsFunc(field, func(r rune) bool { return r == ' ' || r == ',' || r == '/' })
	if len(keys) == 0 {
		return field
	}
	for _, k := range keys {
		if f.hasKey(at + "." + k) {
			return k
		}
	}
	return keys[0]
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

// Where says where the file sets the top-level key path (such as
// "redis.addr"), for an error that the key's value caused at run time:
// "config.toml:4 redis.addr"; or, if the file does not set it,
// "redis.addr not set in config.toml: the default".
func (f *File) Where(key string) string {
	name := filepath.Base(f.Path)
	if l, ok := f.pos.at[key]; ok {
		return fmt.Sprintf("%s:%d %s", name, l, key)
	}
	return fmt.Sprintf("%s not set in %s: the default", key, name)
}

// Line returns the line of the indexed key path (such as
// "worker[0].rate"), of its nearest enclosing table if the key is not in
// the file, or 0.
func (f *File) Line(path string) int { return f.pos.line(path) }
