package redact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask is what a password, token or seed is shown as.
const Mask = "xxxxx"

// URL returns s, a broker address or a comma-separated list of them, in
// any form pacer or its clients accept (nats://u:pw@host:4222,
// u:pw@host:4222, token@host:4222, redis://:pw@host:6379/0, host:port),
// with the user part hidden: "user:xxxxx@" for a user and a password,
// "xxxxx@" for a lone user part, which NATS reads as a token. It does not
// parse s, so an address that does not parse is hidden as well: all
// before the last "@" of each address is user part, whatever it holds
// ("/", "?", "#" or another "@").
func URL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = oneURL(p)
	}
	return strings.Join(parts, ",")
}

func oneURL(p string) string {
	scheme, rest := "", p
	if i := strings.Index(p, "://"); i >= 0 {
		scheme, rest = p[:i+3], p[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return p
	}
	if user, _, ok := strings.Cut(rest[:at], ":"); ok {
		return scheme + user + ":" + Mask + rest[at:]
	}
	return scheme + Mask + rest[at:]
}

// Credential returns what URL hides in the address s: the password of a
// user:password@ part, or the whole of a lone user part (a NATS token);
// "" if s has no user part.
func Credential(s string) string {
	_, rest, found := strings.Cut(s, "://")
	if !found {
		rest = s
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
		return pw
	}
	return rest[:at]
}

// IsNKeySeed reports whether s looks like an nkey seed (an "S" and 57 more
// letters of base32, such as a user's "SU…") rather than the path of a
// file holding one. A seed is shown as "(seed)", a path as itself.
func IsNKeySeed(s string) bool {
	if len(s) < 50 || s[0] != 'S' {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

// NKey returns the value of nats.nkey as logs and errors show it: a path
// as it is, a seed as "(seed)".
func NKey(v string) string {
	if IsNKeySeed(v) {
		return "(seed)"
	}
	return v
}

// quoted is a Go-quoted string inside an error's text.
var quoted = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

// Reason returns the message of err without the text it quotes: url.Parse
// and strconv quote a part of their input, and for a URL holding a
// password with a "/" that part is the password's first half. `invalid
// port ":pw" after host` becomes `invalid port after host`.
func Reason(err error) string {
	return strings.TrimSpace(quoted.ReplaceAllString(err.Error(), ""))
}

// Error returns the message of err with each url.Error in its chain told
// without the input it quotes: its operation, the URL with the user part
// hidden (see URL) and the reason without quoted text (see Reason).
func Error(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for e := err; e != nil; {
		var ue *url.Error
		if !errors.As(e, &ue) {
			break
		}
		msg = strings.ReplaceAll(msg, ue.Error(), fmt.Sprintf("%s %s: %s", ue.Op, URL(ue.URL), Reason(ue.Err)))
		e = ue.Err
	}
	return msg
}

// Wrap returns err with the message Error gives it; errors.Is and
// errors.As still see err. It returns nil for nil.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	if msg := Error(err); msg != err.Error() {
		return &wrapped{msg: msg, err: err}
	}
	return err
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// MinLen is the shortest secret that Secrets replaces: a shorter one
// would replace common words (it is still hidden wherever the code shows
// an address or an error, by URL and Error). A part of a secret split at
// a URL delimiter is replaced from MinPart characters.
const (
	MinLen  = 4
	MinPart = 6
)

// Secrets is the second line of defence: the secret values of a config
// (passwords, tokens, seeds), replaced by Mask in any text that goes out
// — every log line of pacer run, its fatal error, the errors /status
// shows — whatever wrote it (pacer, go-redis, nats.go). The first line is
// that pacer shows addresses only through URL and errors only through
// Error. The zero value and nil replace nothing. A Secrets is safe for
// concurrent use.
type Secrets struct {
	r *strings.Replacer
}

// NewSecrets returns the Secrets of values: each value of MinLen
// characters or more, and each part of MinPart or more of it split at
// "/", "?", "#", "@" or ":" (what url.Parse may quote of a password).
func NewSecrets(values ...string) *Secrets {
	set := map[string]bool{}
	for _, v := range values {
		if len(v) >= MinLen {
			set[v] = true
		}
		for _, p := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune("/?#@:", r) }) {
			if len(p) >= MinPart {
				set[p] = true
			}
		}
	}
	if len(set) == 0 {
		return &Secrets{}
	}
	list := make([]string, 0, len(set))
	for v := range set {
		list = append(list, v)
	}
	// The longest first: a replacer tries its old strings in order.
	slices.SortFunc(list, func(a, b string) int { return len(b) - len(a) })
	var args []string
	for _, v := range list {
		args = append(args, v, Mask)
	}
	return &Secrets{r: strings.NewReplacer(args...)}
}

// String returns s with every secret replaced by Mask.
func (s *Secrets) String(v string) string {
	if s == nil || s.r == nil {
		return v
	}
	return s.r.Replace(v)
}

// Error returns Error(err) with every secret replaced by Mask.
func (s *Secrets) Error(err error) string { return s.String(Error(err)) }

// Writer returns w with every secret replaced by Mask in each Write (one
// fmt.Fprintf is one Write).
func (s *Secrets) Writer(w io.Writer) io.Writer {
	if s == nil || s.r == nil {
		return w
	}
	return writer{w: w, s: s}
}

type writer struct {
	w io.Writer
	s *Secrets
}

func (w writer) Write(p []byte) (int, error) {
	if _, err := w.s.r.WriteString(w.w, string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Handler returns h with every secret replaced by Mask in each record's
// message and attributes (strings, errors, and any other value whose
// text holds one), before h sees them.
func (s *Secrets) Handler(h slog.Handler) slog.Handler {
	if s == nil || s.r == nil {
		return h
	}
	return handler{h: h, s: s}
}

type handler struct {
	h slog.Handler
	s *Secrets
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.s.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.s.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.s.attr(a)
	}
	return handler{h: h.h.WithAttrs(clean), s: h.s}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{h: h.h.WithGroup(name), s: h.s}
}

func (s *Secrets) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = s.attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, s.Error(err))
		}
		if text := fmt.Sprint(v.Any()); s.String(text) != text {
			return slog.String(a.Key, s.String(text))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
