package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Parse is Load on a file's contents; path names the file in errors.
//
// It reports in rounds, so that no error follows from another: a TOML
// syntax error alone; else every value of the wrong type, each at its own
// line; else every bad setting and unknown key. The rules and defaults of
// a worker's pace are package pacer's, of a fleet package redisbucket's,
// of a source or sink its plugin's: Parse maps the *pacer.FieldError they
// return to the line of its key and never checks those rules itself.
func Parse(path, data string, build BuildFunc) (*File, error) {
	f, err := decode(path, data)
	if err != nil {
		return nil, err
	}
	c := &collector{file: filepath.Base(path)}
	c.add(f.expandEnv())
	f.defaults()
	c.add(f.checkTop())
	c.add(f.checkBrokers())
	c.add(f.checkFleets())
	f.checkWorkers(build, c)
	f.unknownKeys(c)
	if len(c.errs) > 0 {
		slices.SortStableFunc(c.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, c.errs
	}
	return f, nil
}

// decode decodes data into a File, in the first two rounds of Parse: the
// size, the nesting and the TOML syntax (one error), then every value of
// the wrong type.
func decode(path, data string) (*File, error) {
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
	return f, nil
}

// collector gathers the errors of Parse's last round.
type collector struct {
	file string
	errs Errors
}

func (c *collector) add(err error) {
	if err == nil {
		return
	}
	var es Errors
	var e *Error
	switch {
	case errors.As(err, &es):
		c.errs = append(c.errs, es...)
	case errors.As(err, &e):
		c.errs = append(c.errs, e)
	default:
		c.errs = append(c.errs, &Error{File: c.file, Msg: err.Error()})
	}
}

// checkWorkers checks each [[worker]]: its name (present, unique), its
// settings, and its source and sink, built by build.
func (f *File) checkWorkers(build BuildFunc, c *collector) {
	seen := map[string]int{}
	for i := range f.Workers {
		w := &f.Workers[i]
		w.Index = i
		at := fmt.Sprintf("worker[%d]", i)
		if w.Name == "" {
			c.add(f.errAt(at+".name", fmt.Sprintf("worker #%d name", i+1), "missing: every [[worker]] needs a name"))
			w.Name = fmt.Sprintf("#%d", i+1)
		} else if j, dup := seen[w.Name]; dup {
			c.add(f.errAt(at+".name", fmt.Sprintf("worker %q name", w.Name),
				fmt.Sprintf("duplicate: worker #%d (line %d) has this name too; names must be unique", j+1, f.pos.line(fmt.Sprintf("worker[%d].name", j)))))
		} else {
			seen[w.Name] = i
		}
		c.add(f.checkWorker(w))
		for _, sec := range []string{"source", "sink"} {
			f.buildPlugin(w, at, sec, build, c)
		}
	}
}

// buildPlugin reads the kind of worker w's [worker.source] or
// [worker.sink] table (sec) and builds it with build.
func (f *File) buildPlugin(w *Worker, at, sec string, build BuildFunc, c *collector) {
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
		c.add(err)
		return
	}
	p.kind = k.Kind
	if k.Kind == "" {
		c.add(f.errAt(p.path, p.label(""), fmt.Sprintf("missing: add a [worker.%s] table with a kind after this [[worker]]", sec)))
		return
	}
	if build != nil {
		v, err := build(p)
		if err != nil {
			p.failed = true
			c.add(p.fieldError(err))
			return
		}
		p.Built = v
	}
}

// unknownKeys reports every key the decoder did not use, at each of its
// lines, with a suggestion where one is near.
func (f *File) unknownKeys(c *collector) {
	for _, k := range f.md.Undecoded() {
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
			c.add(&Error{File: c.file, Line: l, Key: key, Msg: msg})
		}
	}
}
