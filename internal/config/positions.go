package config

import (
	"strconv"
	"strings"
)

// positions maps each key of a TOML document to the line it is on, so that
// an error can name the line. BurntSushi/toml keeps key positions private,
// so this is a small line scanner that knows enough TOML for config files:
// [table] and [[array]] headers, key = value lines, inline tables and
// multi-line arrays whose elements start on their own lines.
type positions struct {
	at    map[string]int   // indexed path ("worker[1].sink.kind") → line
	plain map[string][]int // path without indexes ("worker.sink.kind") → lines
}

func scanPositions(data string) *positions {
	ps := &positions{at: map[string]int{}, plain: map[string][]int{}}
	arrays := map[string]int{} // indexed prefix of an [[array]] → its last index
	prefix := ""
	// A multi-line array value open since an earlier line.
	openKey, openDepth, openElem := "", 0, -1
	for i, raw := range strings.Split(data, "\n") {
		line := i + 1
		s := strings.TrimSpace(stripComment(raw))
		if s == "" {
			continue
		}
		if openKey != "" {
			if openDepth == 1 && (strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[")) {
				openElem++
				ps.add(openKey+"["+strconv.Itoa(openElem)+"]", line)
			}
			openDepth += depth(s)
			if openDepth <= 0 {
				openKey = ""
			}
			continue
		}
		switch {
		case strings.HasPrefix(s, "[["):
			name := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "[["), "]]"))
			p := resolve(arrays, name, true)
			ps.add(p, line) // the array itself, for "[[worker.source]] is a list" errors
			arrays[p]++
			prefix = p + "[" + strconv.Itoa(arrays[p]-1) + "]"
			ps.add(prefix, line)
		case strings.HasPrefix(s, "["):
			name := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
			prefix = resolve(arrays, name, false)
			ps.add(prefix, line)
		default:
			eq := strings.Index(s, "=")
			if eq < 0 {
				continue
			}
			key := strings.Trim(strings.TrimSpace(s[:eq]), `"'`)
			full := key
			if prefix != "" {
				full = prefix + "." + key
			}
			ps.add(full, line)
			value := strings.TrimSpace(s[eq+1:])
			if strings.HasPrefix(value, "{") {
				// Inline table on one line: its keys share the line.
				for _, kv := range strings.Split(strings.Trim(value, "{}"), ",") {
					if k, _, ok := strings.Cut(kv, "="); ok {
						ps.add(full+"."+strings.Trim(strings.TrimSpace(k), `"'`), line)
					}
				}
			}
			if d := depth(value); d > 0 && strings.HasPrefix(value, "[") {
				openKey, openDepth, openElem = full, d, -1
			}
		}
	}
	return ps
}

// resolve turns a dotted header name into an indexed path: each prefix
// that names an [[array]] gets the index of its last element; the last
// part too unless header is the name of an [[array]] header itself.
func resolve(arrays map[string]int, name string, header bool) string {
	var b strings.Builder
	parts := strings.Split(name, ".")
	for i, part := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strings.Trim(strings.TrimSpace(part), `"'`))
		if n, ok := arrays[b.String()]; ok && !(header && i == len(parts)-1) {
			b.WriteString("[" + strconv.Itoa(n-1) + "]")
		}
	}
	return b.String()
}

func (ps *positions) add(path string, line int) {
	if _, ok := ps.at[path]; !ok {
		ps.at[path] = line
	}
	pl := unindex(path)
	ps.plain[pl] = append(ps.plain[pl], line)
}

// line returns the line of path, or of its nearest ancestor that has one,
// or 0.
func (ps *positions) line(path string) int {
	for path != "" {
		if l, ok := ps.at[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

// unindex drops the [i] parts of a path.
func unindex(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// depth returns the net count of opened brackets and braces on a line,
// outside strings.
func depth(s string) int {
	d := 0
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '[' || r == '{':
			d++
		case r == ']' || r == '}':
			d--
		}
	}
	return d
}

// stripComment removes a # comment that is outside strings.
func stripComment(s string) string {
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#':
			return s[:i]
		}
	}
	return s
}
