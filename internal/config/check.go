package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/redact"
	"github.com/jobpacer/pacer/pacer"
)

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
		if done, e := f.checkFleetStore(&fl, at, label); done {
			errs = append(errs, e...)
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
