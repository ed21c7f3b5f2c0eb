package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/pacer"
)

// twinsOf checks that every toml-tagged field of lib (but those in skip)
// has a field of the same toml key in file whose type converts to it.
func twinsOf(t *testing.T, lib, file reflect.Type, skip ...string) {
	t.Helper()
	fields := map[string]reflect.StructField{}
	for i := range file.NumField() {
		if n := tomlName(file.Field(i)); n != "" {
			fields[n] = file.Field(i)
		}
	}
	for i := range lib.NumField() {
		lf := lib.Field(i)
		n := tomlName(lf)
		if n == "" || !lf.IsExported() || contains(skip, n) {
			continue
		}
		ff, ok := fields[n]
		switch {
		case !ok:
			t.Errorf("%v.%s (toml %q) has no twin in %v: add a field with the same toml tag", lib, lf.Name, n, file)
		case !ff.Type.ConvertibleTo(lf.Type):
			t.Errorf("%v.%s (toml %q) is a %v; %v.%s is a %v, which does not convert to it", lib, lf.Name, n, lf.Type, file, ff.Name, ff.Type)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Issue 20: a pace setting is declared once, in pacer.Config (a fleet's
// in redisbucket.Config); the file's Worker (Fleet) holds a twin of
// each, by toml key, and this test fails while one is missing.
func TestPaceSettingsHaveTwins(t *testing.T) {
	twinsOf(t, reflect.TypeFor[pacer.Config](), reflect.TypeFor[Worker]())
	twinsOf(t, reflect.TypeFor[redisbucket.Config](), reflect.TypeFor[Fleet](), "key") // the table's name
}

// Pacer and Bucket carry every twin's value to the library's field: each
// twin set to a distinct value comes out in the field of its toml key.
func TestPacerAndBucketCarryEveryTwin(t *testing.T) {
	var w Worker
	fill(reflect.ValueOf(&w).Elem())
	checkCarried(t, reflect.ValueOf(w), reflect.ValueOf(w.Pacer()))
	fl := Fleet{Name: "mail"}
	fill(reflect.ValueOf(&fl).Elem())
	b := fl.Bucket()
	checkCarried(t, reflect.ValueOf(fl), reflect.ValueOf(b))
	if b.Key != "mail" {
		t.Errorf("Bucket().Key = %q, want the table's name %q", b.Key, "mail")
	}
}

// fill gives each toml-tagged number, string or slice field of v a
// distinct non-zero value.
func fill(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if tomlName(v.Type().Field(i)) == "" {
			continue
		}
		n := int64(i + 1)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(n * int64(time.Millisecond))
		case reflect.Float64:
			f.SetFloat(float64(n) + 0.5)
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Slice:
			if f.Type() == reflect.TypeFor[[]pacer.AdjRow]() {
				f.Set(reflect.ValueOf([]pacer.AdjRow{{LBound: 0.25, LFactor: 2, UBound: 0.75, UFactor: 0.5}}))
			}
		}
	}
}

// checkCarried fails t for each toml-tagged field of lib that is not the
// value of file's field of the same key.
func checkCarried(t *testing.T, file, lib reflect.Value) {
	t.Helper()
	byName := map[string]reflect.Value{}
	for i := range file.NumField() {
		if n := tomlName(file.Type().Field(i)); n != "" {
			byName[n] = file.Field(i)
		}
	}
	for i := range lib.NumField() {
		n := tomlName(lib.Type().Field(i))
		src, ok := byName[n]
		if !ok {
			continue
		}
		if got, want := lib.Field(i).Interface(), src.Convert(lib.Field(i).Type()).Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%v.%s = %v, want %v (the file's %s)", lib.Type(), lib.Type().Field(i).Name, got, want, n)
		}
	}
}
