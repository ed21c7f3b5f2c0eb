package config

import (
	"fmt"
	"strings"
)

// MaxNesting is how deeply a config file may nest tables, arrays and
// dotted keys: the parts of a [table] header or a dotted key, and each
// inline table or array opened inside a value, count a level each. A
// pacer config needs a few ([worker.sink] with headers = { k = "v" } is 5);
// the TOML decoder's cost grows with the square of the depth (16,000
// nested inline tables, a 96 KB file, took 87 s and 13 GB), so Parse
// refuses a deeper file before decoding it.
const MaxNesting = 16

// checkNesting returns an error at the first line of data that nests
// deeper than MaxNesting, or nil. It is a scan, not a parser: it counts
// brackets, braces and dots outside strings and comments, and leaves
// every other rule to the decoder.
func checkNesting(file, data string) *Error {
	type open struct {
		level int  // the level before the bracket or brace
		table bool // an inline table: its keys follow '{' and ','
	}
	var stack []open
	header := 0 // the parts of the last [table] or [[array]] header
	level := 0  // the level here
	key := true // in a key (dots separate parts), not a value
	inHeader := false
	line := 1
	tooDeep := func() *Error {
		return &Error{File: file, Line: line, Msg: fmt.Sprintf("tables, arrays and dotted keys nested more than %d levels deep: want at most %d", MaxNesting, MaxNesting)}
	}
	startKey := false // the next key character starts a part
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch c {
		case '\n':
			line++
			if len(stack) == 0 {
				key, startKey, inHeader, level = true, true, false, header
			}
			continue
		case ' ', '\t', '\r':
			continue
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
			continue
		case '"', '\'':
			j, n := skipString(data, i)
			line += n
			i = j
			if key && startKey {
				level++
				startKey = false
			}
		case '.':
			if key || inHeader {
				startKey = true
			}
			continue
		case '=':
			if key {
				key, startKey = false, false
			}
			continue
		case '[':
			if len(stack) == 0 && key && !inHeader {
				// A [table] or [[array]] header.
				inHeader, header, level, startKey = true, 0, 0, true
				if i+1 < len(data) && data[i+1] == '[' {
					i++
				}
				continue
			}
			if inHeader {
				continue
			}
			stack = append(stack, open{level: level})
			level++
			key = false
		case '{':
			stack = append(stack, open{level: level, table: true})
			level++
			key, startKey = true, true
		case ']':
			if inHeader {
				inHeader, header = false, level
				if i+1 < len(data) && data[i+1] == ']' {
					i++
				}
				continue
			}
			fallthrough
		case '}':
			if n := len(stack); n > 0 {
				level = stack[n-1].level
				stack = stack[:n-1]
			}
			key = false
			continue
		case ',':
			if n := len(stack); n > 0 && stack[n-1].table {
				level = stack[n-1].level + 1
				key, startKey = true, true
			}
			continue
		default:
			if (key || inHeader) && startKey {
				level++
				startKey = false
			}
		}
		if inHeader {
			header = level
		}
		if level > MaxNesting {
			return tooDeep()
		}
	}
	return nil
}

// skipString returns the index of the last byte of the string that starts
// at data[i] (a quote), and how many newlines it holds. An unterminated
// string ends at the end of its line (or of data, if multi-line): the
// decoder reports it.
func skipString(data string, i int) (end, newlines int) {
	q := data[i]
	if strings.HasPrefix(data[i:], strings.Repeat(string(q), 3)) {
		for j := i + 3; j < len(data); j++ {
			switch {
			case data[j] == '\\' && q == '"':
				if j+1 < len(data) && data[j+1] == '\n' {
					newlines++
				}
				j++
			case data[j] == '\n':
				newlines++
			case strings.HasPrefix(data[j:], strings.Repeat(string(q), 3)):
				j += 2
				for j+1 < len(data) && data[j+1] == q { // up to two quotes end the content
					j++
				}
				return j, newlines
			}
		}
		return len(data) - 1, newlines
	}
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			if q == '"' {
				j++
			}
		case q:
			return j, 0
		case '\n':
			return j - 1, 0
		}
	}
	return len(data) - 1, 0
}
