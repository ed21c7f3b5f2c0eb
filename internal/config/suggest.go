package config

import (
	"reflect"
	"slices"
	"strings"
)

// suggestion returns "did you mean KEY?" for an unknown key (a path
// without indexes, such as "worker.max_inflight"): the known key of its
// table nearest to its last part by edit distance, if one is near (at most
// 2 edits, and fewer than half the key's letters); else "".
func (f *File) suggestion(key string) string {
	i := strings.LastIndexByte(key, '.')
	table, name := "", key
	if i >= 0 {
		table, name = key[:i], key[i+1:]
	}
	best, bestD := "", 3
	for _, k := range f.tableKeys(table) {
		if d := editDistance(name, k); d < bestD && 2*d < len(name) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return "did you mean " + best + "?"
}

// tableKeys returns the keys the table at path (without indexes: "",
// "redis.sentinel", "worker", "worker.sink", "fleet.NAME") takes. For a
// worker's source or sink table they are the keys of every plugin that
// decoded such a table in f.
func (f *File) tableKeys(path string) []string {
	if path == "worker.source" || path == "worker.sink" {
		var keys []string
		for _, w := range f.Workers {
			p := w.Source
			if path == "worker.sink" {
				p = w.Sink
			}
			if p == nil {
				continue
			}
			for _, t := range p.decoded {
				keys = append(keys, structKeys(t)...)
			}
		}
		slices.Sort(keys)
		return slices.Compact(keys)
	}
	t := reflect.TypeFor[File]()
	if path != "" {
		for part := range strings.SplitSeq(path, ".") {
			for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			switch t.Kind() {
			case reflect.Map: // [fleet.NAME]: the part is a name
				t = t.Elem()
				continue
			case reflect.Struct:
			default:
				return nil
			}
			sf, ok := fieldByTag(t, part)
			if !ok {
				return nil
			}
			t = sf.Type
		}
	}
	for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	return structKeys(t)
}

// structKeys returns the toml keys of struct type t.
func structKeys(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// editDistance is the Levenshtein distance between a and b: the fewest
// letters inserted, deleted or replaced to turn a into b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
