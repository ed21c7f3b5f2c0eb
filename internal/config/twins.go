package config

import (
	"reflect"
	"strings"
)

// The pace settings of a [[worker]] are pacer.Config's and those of a
// [fleet.NAME] redisbucket.Config's: each is declared once, in the
// library, with its toml tag, and config.Worker and config.Fleet hold a
// twin of each field under the same tag, in the file's own types
// (Duration, which refuses a bare number, for time.Duration; Latency,
// which also takes "auto"). copyByTag maps the twins to the library's
// field by that tag, so a new setting is the library's field and its
// twin, and TestPaceSettingsHaveTwins fails while the twin is missing.
// Decoding into pacer.Config itself would take a bare 10 as 10ns and
// refuse "auto"; the twins keep the file's rules.

// tomlName returns the key of a struct field's toml tag, "" if it has
// none or is "-".
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// copyByTag sets each toml-tagged field of the struct *dst to the field
// of the struct src (or *src) with the same toml key, converted to the
// field's type. A field of dst with no twin in src is left as it is.
func copyByTag(dst, src any) {
	d := reflect.ValueOf(dst).Elem()
	s := reflect.Indirect(reflect.ValueOf(src))
	byName := map[string]int{}
	for i := range s.NumField() {
		if n := tomlName(s.Type().Field(i)); n != "" {
			byName[n] = i
		}
	}
	for i := range d.NumField() {
		j, ok := byName[tomlName(d.Type().Field(i))]
		if !ok || !d.Field(i).CanSet() {
			continue
		}
		d.Field(i).Set(s.Field(j).Convert(d.Field(i).Type()))
	}
}
