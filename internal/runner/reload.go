package runner

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/jobpacer/pacer/internal/config"
)

// Reload applies the pace settings of f, a new load of the same config:
// the workers' rate and base and the fleets' rate change in place, without
// dropping work. Every other difference is refused, each named (with its
// old and new value where it holds no secret), and keeps its running
// value until a restart. When f has the same workers, what can change in
// place is applied even if something else is refused: Reload then returns
// a *ReloadError that lists both. When the workers differ (added, removed,
// renamed or moved), nothing is applied. A fleet's new rate is this
// process's: reload every process of the fleet (until then, the shared
// bucket runs at the rate of whichever process called Redis last).
func (r *Runner) Reload(f *config.File) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	refused := structural(r.cfg, f)
	if !slices.Equal(workerNames(r.cfg), workerNames(f)) {
		return &ReloadError{Refused: refused}
	}
	var applied []string
	if fleets := r.fleets.Load(); fleets != nil {
		for _, name := range slices.Sorted(maps.Keys(r.cfg.Fleets)) {
			if o, n := r.cfg.Fleets[name].Rate, f.Fleets[name].Rate; o != n {
				applied = append(applied, fmt.Sprintf("fleet %q rate %g → %g", name, o, n))
			}
		}
		if err := fleets.SetRates(f); err != nil {
			return err
		}
	}
	for i, w := range r.workers {
		nw := f.Workers[i].Settings
		old := w.cfg.Settings
		if nw.Rate == old.Rate && nw.Base == old.Base {
			continue
		}
		// Keep base ≤ rate at every step.
		var err error
		if nw.Rate >= old.Rate {
			err = errors.Join(w.p.SetRate(nw.Rate), w.p.SetBase(nw.Base))
		} else {
			err = errors.Join(w.p.SetBase(nw.Base), w.p.SetRate(nw.Rate))
		}
		if err != nil {
			return fmt.Errorf("worker %q: %w", w.cfg.Name, err)
		}
		r.log.Info("reloaded", "worker", w.cfg.Name, "rate", fmt.Sprintf("%g → %g", old.Rate, nw.Rate),
			"base", fmt.Sprintf("%g → %g", old.Base, nw.Base))
		applied = append(applied, fmt.Sprintf("worker %q rate %g → %g, base %g → %g", w.cfg.Name, old.Rate, nw.Rate, old.Base, nw.Base))
		w.cfg.Rate, w.cfg.Base, w.cfg.Settings.Rate, w.cfg.Settings.Base = f.Workers[i].Rate, f.Workers[i].Base, nw.Rate, nw.Base
	}
	if len(refused) == 0 {
		r.cfg = f
		return nil
	}
	// The running config: the old one with what was applied, so that the
	// next reload compares the refused settings with what still runs.
	nc := *r.cfg
	nc.Workers = slices.Clone(r.cfg.Workers)
	for i := range nc.Workers {
		nc.Workers[i].Rate, nc.Workers[i].Base = f.Workers[i].Rate, f.Workers[i].Base
		nc.Workers[i].Settings.Rate, nc.Workers[i].Settings.Base = f.Workers[i].Settings.Rate, f.Workers[i].Settings.Base
	}
	nc.Fleets = maps.Clone(r.cfg.Fleets)
	for name, fl := range nc.Fleets {
		if nf, ok := f.Fleets[name]; ok {
			fl.Rate, fl.Settings.Rate = nf.Rate, nf.Settings.Rate
			nc.Fleets[name] = fl
		}
	}
	r.cfg = &nc
	return &ReloadError{Applied: applied, Refused: refused}
}

// ReloadError is a reload that refused some changes: each is named in
// Refused, and keeps its running value until a restart. Applied lists
// what the reload changed in place all the same (rates and bases); none
// if it is empty.
type ReloadError struct {
	Applied []string
	Refused []string
}

func (e *ReloadError) Error() string {
	applied := "nothing applied"
	if len(e.Applied) > 0 {
		applied = "applied: " + strings.Join(e.Applied, "; ")
	} else if len(e.Refused) == 0 {
		return "reload: nothing to apply"
	}
	return fmt.Sprintf("reload refused (restart to apply): %s; %s", strings.Join(e.Refused, "; "), applied)
}

func workerNames(f *config.File) []string {
	var n []string
	for _, w := range f.Workers {
		n = append(n, w.Name)
	}
	return n
}

// structural lists the differences between a and b that a reload cannot
// apply in place.
func structural(a, b *config.File) []string {
	var d []string
	d = append(d, topLevel(*a, *b)...)
	if !slices.Equal(workerNames(a), workerNames(b)) {
		return append(d, fmt.Sprintf("the workers changed: %v → %v", workerNames(a), workerNames(b)))
	}
	for i := range a.Workers {
		x, y := a.Workers[i], b.Workers[i]
		if x.Source.Kind() != y.Source.Kind() || !x.Source.Equal(y.Source) {
			d = append(d, fmt.Sprintf("worker %q: its [worker.source] changed", x.Name))
		}
		if x.Sink.Kind() != y.Sink.Kind() || !x.Sink.Equal(y.Sink) {
			d = append(d, fmt.Sprintf("worker %q: its [worker.sink] changed", x.Name))
		}
		px, py := x.Pacer(), y.Pacer()
		px.Rate, px.Base, py.Rate, py.Base = 0, 0, 0, 0
		if !reflect.DeepEqual(px, py) {
			if keys := changedKeys(x, y); len(keys) > 0 {
				for _, k := range keys {
					d = append(d, fmt.Sprintf("worker %q: %s (only rate and base reload in place)", x.Name, k))
				}
			} else {
				d = append(d, fmt.Sprintf("worker %q: a pace setting other than rate and base changed", x.Name))
			}
		}
		if x.Fleet != y.Fleet {
			d = append(d, fmt.Sprintf("worker %q: its fleet changed (%q → %q)", x.Name, x.Fleet, y.Fleet))
		}
	}
	seen := map[string]bool{}
	for _, w := range a.Workers {
		if w.Fleet == "" || seen[w.Fleet] {
			continue
		}
		seen[w.Fleet] = true
		fx, fy := a.Fleets[w.Fleet], b.Fleets[w.Fleet]
		fx.Rate, fy.Rate, fx.Settings.Rate, fy.Settings.Rate = 0, 0, 0, 0
		if fx != fy {
			d = append(d, fmt.Sprintf("fleet %q: a setting other than rate changed", w.Fleet))
		}
	}
	return d
}

// topLevel names the top-level keys and tables, other than [[worker]]
// and [fleet], whose value differs between a and b: "admin changed
// (old → new)"; a table as "[redis] changed" (its values may hold
// passwords).
func topLevel(a, b config.File) []string {
	return changedFields(reflect.ValueOf(a), reflect.ValueOf(b), "worker", "fleet")
}

// changedKeys names the [[worker]] keys, other than name, fleet, rate,
// base, source and sink, whose value differs between x and y, each as
// "key changed (old → new)".
func changedKeys(x, y config.Worker) []string {
	return changedFields(reflect.ValueOf(x), reflect.ValueOf(y), "name", "fleet", "rate", "base", "source", "sink")
}

// changedFields names the toml keys of structs a and b (of one type),
// other than skip, whose values differ: "key changed (old → new)", or
// "[key] changed" for a table.
func changedFields(a, b reflect.Value, skip ...string) []string {
	var d []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		key := f.Tag.Get("toml")
		if key == "" || key == "-" || slices.Contains(skip, key) {
			continue
		}
		x, y := a.Field(i).Interface(), b.Field(i).Interface()
		switch {
		case reflect.DeepEqual(x, y):
		case f.Type.Kind() == reflect.Struct:
			d = append(d, fmt.Sprintf("[%s] changed", key))
		default:
			d = append(d, fmt.Sprintf("%s changed (%v → %v)", key, show(x), show(y)))
		}
	}
	return d
}

// show is how changedKeys prints a value: durations as durations.
func show(v any) any {
	if d, ok := v.(config.Duration); ok {
		return time.Duration(d)
	}
	return v
}
