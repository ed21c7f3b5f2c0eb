package config

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/BurntSushi/toml"
)

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
