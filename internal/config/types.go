package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// typeErrors walks raw, a TOML table decoded into plain Go values, beside
// t, the struct it will be decoded into, and returns an Error for every
// value of the wrong type, at its own line and key, in plain words. The
// decoder stops at the first mismatch and names it in its own words
// ("incompatible types: TOML value has type string; destination has type
// float"), often at another key's line; this says `rate: "20" is a
// string: want a number, such as 20` at the line of rate, for every
// mismatch at once. Keys t has no field for are left to the unknown-key
// check.
func (f *File) typeErrors(raw map[string]any, t reflect.Type, path, label string) Errors {
	var errs Errors
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sf, ok := fieldByTag(t, k)
		if !ok {
			continue
		}
		errs = append(errs, f.typeError(raw[k], sf.Type, join(path, k), labelKey(label, k), sf.Tag.Get("want"))...)
	}
	return errs
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func labelKey(label, k string) string {
	if label == "" {
		return k
	}
	return label + " " + k
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	primitiveType   = reflect.TypeFor[toml.Primitive]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// typeError returns the errors of v, a value decoded from TOML at path,
// against t, the type of the field it goes into (want: what the field's
// doc says it takes, or "" for the kind's own words); nil if v fits.
func (f *File) typeError(v any, t reflect.Type, path, label, want string) Errors {
	bad := func(msg string) Errors { return Errors{f.errAt(path, label, msg)} }
	switch {
	case t == primitiveType: // [worker.source], [worker.sink]
		return f.pluginTableError(v, path, bad)
	case t == durationType || reflect.PointerTo(t).Implements(textUnmarshaler):
		return textError(v, t, want, bad)
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return bad(fmt.Sprintf("%s: want a [%s] table", describe(v), unindex(path)))
		}
		return f.typeErrors(m, t, path, label)
	case reflect.Map:
		return f.mapError(v, t, path, label, bad)
	case reflect.Slice:
		return f.sliceError(v, t, path, label, want, bad)
	case reflect.Interface:
		return nil
	}
	return scalarError(v, t, want, bad)
}

// pluginTableError checks a plugin's table ([worker.source], [worker.sink]).
func (f *File) pluginTableError(v any, path string, bad func(string) Errors) Errors {
	switch v.(type) {
	case map[string]any:
		return nil
	case []map[string]any:
		p := unindex(path)
		return bad(fmt.Sprintf("[[%s]] is a list of tables: a worker has one %s; write [%s] with one bracket", p, last(p), p))
	}
	return bad(fmt.Sprintf("%s: want a [%s] table with a kind", describe(v), unindex(path)))
}

// textError checks a duration or a value of a type that decodes itself
// from text.
func textError(v any, t reflect.Type, want string, bad func(string) Errors) Errors {
	s, ok := v.(string)
	if !ok {
		return bad(fmt.Sprintf("%s: want %s", describe(v), or(want, `a duration in quotes with a unit, such as "10s" or "250ms"`)))
	}
	if t == durationType {
		if _, err := time.ParseDuration(s); err != nil {
			return bad(fmt.Sprintf("%q is not a duration: want a number with a unit, such as \"10s\" or \"250ms\"", s))
		}
		return nil
	}
	if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
		return bad(err.Error())
	}
	return nil
}

// scalarError checks a number, a string or a bool.
func scalarError(v any, t reflect.Type, want string, bad func(string) Errors) Errors {
	is := describe(v)
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case int64, float64:
			return nil
		}
		return bad(fmt.Sprintf("%s: want %s", is, or(want, "a number, such as "+example(v, "10"))))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		switch x := v.(type) {
		case int64:
			return nil
		case float64:
			return bad(fmt.Sprintf("%g is not a whole number: want %s", x, or(want, "a whole number, such as 10")))
		}
		return bad(fmt.Sprintf("%s: want %s", is, or(want, "a whole number, such as "+example(v, "10"))))
	case reflect.String:
		if _, ok := v.(string); ok {
			return nil
		}
		return bad(fmt.Sprintf("%s: want %s", is, or(want, fmt.Sprintf("a string in quotes, such as \"%v\"", v))))
	case reflect.Bool:
		if _, ok := v.(bool); ok {
			return nil
		}
		return bad(fmt.Sprintf("%s: want true or false", is))
	}
	return nil
}

// mapError checks a table decoded into a map, key by key.
func (f *File) mapError(v any, t reflect.Type, path, label string, bad func(string) Errors) Errors {
	m, ok := v.(map[string]any)
	if !ok {
		return bad(fmt.Sprintf("%s: want a table", describe(v)))
	}
	var errs Errors
	for _, k := range sortedKeys(m) {
		kl := labelKey(label, k)
		if t.Elem().Kind() == reflect.Struct {
			kl = fmt.Sprintf("%s %q", label, k) // fleet "mailgun"
		}
		errs = append(errs, f.typeError(m[k], t.Elem(), join(path, k), kl, "")...)
	}
	return errs
}

// sliceError checks a list or an array of tables, element by element.
func (f *File) sliceError(v any, t reflect.Type, path, label, want string, bad func(string) Errors) Errors {
	var elems []any
	switch x := v.(type) {
	case []any:
		elems = x
	case []map[string]any:
		for _, e := range x {
			elems = append(elems, e)
		}
	case map[string]any:
		if t.Elem().Kind() == reflect.Struct {
			p := unindex(path)
			return bad(fmt.Sprintf("[%s] is one table: write [[%s]] (two brackets) before each %s, then its own tables", p, p, last(p)))
		}
		return bad(fmt.Sprintf("%s: want a list", describe(v)))
	default:
		if t.Elem().Kind() == reflect.String {
			return bad(fmt.Sprintf("%s: want %s", describe(v), or(want, fmt.Sprintf("a list of strings, such as [%q]", fmt.Sprint(v)))))
		}
		return bad(fmt.Sprintf("%s: want %s", describe(v), or(want, "a list, such as [1, 2]")))
	}
	var errs Errors
	for i, e := range elems {
		ip := fmt.Sprintf("%s[%d]", path, i)
		il := label
		if t.Elem().Kind() != reflect.Struct {
			il = fmt.Sprintf("%s[%d]", label, i)
		}
		if t.Elem().Kind() == reflect.Struct {
			if m, ok := e.(map[string]any); ok {
				il = elemLabel(path, i, m)
			}
		}
		errs = append(errs, f.typeError(e, t.Elem(), ip, il, "")...)
	}
	return errs
}

// elemLabel names the i-th element of the array of tables at path the way
// other errors do: `worker "emails"`, `worker #2`, `adjmap row 2`.
func elemLabel(path string, i int, m map[string]any) string {
	p := unindex(path)
	if p == "worker" {
		if n, ok := m["name"].(string); ok && n != "" {
			return fmt.Sprintf("worker %q", n)
		}
		return fmt.Sprintf("worker #%d", i+1)
	}
	return fmt.Sprintf("%s row %d", last(p), i+1)
}

func last(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// example returns v as a number if it is a string that holds one, for
// "such as 20" after `"20" is a string`, else def.
func example(v any, def string) string {
	if s, ok := v.(string); ok {
		if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			return strings.TrimSpace(s)
		}
	}
	return def
}

// describe says what a TOML value is: `"20" is a string`, `5 is a number`.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q is a string", x)
	case int64:
		return fmt.Sprintf("%d is a number", x)
	case float64:
		return fmt.Sprintf("%g is a number", x)
	case bool:
		return fmt.Sprintf("%t is a boolean", x)
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return fmt.Sprintf("%v is a date", x)
	}
	return fmt.Sprintf("%v", v)
}

// fieldByTag returns the field of struct t whose toml tag is key.
func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		if name == "" && sf.IsExported() && sf.Tag.Get("toml") == "" {
			name = sf.Name // BurntSushi matches untagged fields by name
			if strings.EqualFold(name, key) {
				return sf, true
			}
			continue
		}
		if name == key {
			return sf, true
		}
	}
	return reflect.StructField{}, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
