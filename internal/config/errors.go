package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a config file, at a line and key.
type Error struct {
	File string
	Line int    // 0 if unknown
	Key  string // where in the file: `worker "emails" rate`
	Msg  string
}

// Error formats e as FILE:LINE: KEY: MSG.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Errors is every problem found in a config file, in line order.
type Errors []*Error

// Error joins the errors, one a line.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}
