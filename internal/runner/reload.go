package runner

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/jobpacer/pacer/internal/config"
)

// Reload applies the pace settings of f, a new load of the same config:
// the workers' rate and base and the fleets' rate change in place, without
// dropping work. Any other difference is refused, with an error that
// names it, and nothing changes. A fleet's new rate is this process's:
// reload every process of the fleet (until then, the shared bucket runs
// at the rate of whichever process called Redis last).
func (r *Runner) Reload(f *config.File) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if diffs := structural(r.cfg, f); len(diffs) > 0 {
		return fmt.Errorf("reload refused (restart to apply): %s", strings.Join(diffs, "; "))
	}
	if fleets := r.fleets.Load(); fleets != nil {
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
		w.cfg.Rate, w.cfg.Base, w.cfg.Settings.Rate, w.cfg.Settings.Base = f.Workers[i].Rate, f.Workers[i].Base, nw.Rate, nw.Base
	}
	r.cfg = f
	return nil
}

// structural lists the differences between a and b that a reload cannot
// apply in place.
func structural(a, b *config.File) []string {
	var d []string
	if a.Admin != b.Admin || a.AdminPprof != b.AdminPprof || !reflect.DeepEqual(a.Redis, b.Redis) || !reflect.DeepEqual(a.NATS, b.NATS) || a.Demo != b.Demo ||
		a.LogFormat != b.LogFormat || a.LogLevel != b.LogLevel || a.DrainTimeout != b.DrainTimeout || a.StatusEvery != b.StatusEvery || a.RecoverTimeout != b.RecoverTimeout {
		d = append(d, "a top-level setting ([redis], [nats], [demo], admin, admin_pprof, log_*, drain_timeout, recover_timeout, status_every) changed")
	}
	names := func(f *config.File) []string {
		var n []string
		for _, w := range f.Workers {
			n = append(n, w.Name)
		}
		return n
	}
	if !slices.Equal(names(a), names(b)) {
		return append(d, fmt.Sprintf("the workers changed: %v → %v", names(a), names(b)))
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

// changedKeys names the [[worker]] keys, other than name, fleet, rate,
// base, source and sink, whose value differs between x and y, each as
// "key changed (old → new)".
func changedKeys(x, y config.Worker) []string {
	var d []string
	vx, vy := reflect.ValueOf(x), reflect.ValueOf(y)
	for i := range vx.NumField() {
		f := vx.Type().Field(i)
		key := f.Tag.Get("toml")
		switch key {
		case "", "-", "name", "fleet", "rate", "base", "source", "sink":
			continue
		}
		a, b := vx.Field(i).Interface(), vy.Field(i).Interface()
		if !reflect.DeepEqual(a, b) {
			d = append(d, fmt.Sprintf("%s changed (%v → %v)", key, show(a), show(b)))
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
