package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/jobpacer/pacer/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://u:pw@h:1":                  "nats://u:xxxxx@h:1",
		"nats://tok@h:1,nats://h2:1":       "nats://xxxxx@h:1,nats://h2:1",
		"rediss://:pw@h:1/2":               "rediss://:xxxxx@h:1/2",
		"h:1":                              "h:1",
		"nats://u:p%zz@h:1":                "nats://u:xxxxx@h:1",
		"u:pw@h:4222":                      "u:xxxxx@h:4222",
		"tok@h:4222, u:pw@h2:4222":         "xxxxx@h:4222, u:xxxxx@h2:4222",
		"nats://u:head/tail@h:1":           "nats://u:xxxxx@h:1",
		"redis://:a@b/c?d#e@h:6379/0":      "redis://:xxxxx@h:6379/0",
		"redis://user:pw@h":                "redis://user:xxxxx@h",
		"embedded":                         "embedded",
		"nats://127.0.0.1:4222,tls://b:42": "nats://127.0.0.1:4222,tls://b:42",
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		if c := redact.Credential(in); c != "" && strings.Contains(redact.URL(in), c) {
			t.Errorf("URL(%q) = %q shows its credential %q", in, redact.URL(in), c)
		}
	}
}

func TestErrorQuotesNoInput(t *testing.T) {
	t.Parallel()
	bad := strings.Join([]string{"nats://u:head-secret", "tail-secret@h:4222"}, "/") // url.Parse sees the port ":head-secret"
	_, perr := url.Parse(bad)
	err := fmt.Errorf("worker: nats: %w", perr)
	got := redact.Error(err)
	if strings.Contains(got, "head-secret") || strings.Contains(got, "tail-secret") {
		t.Errorf("Error(%v) = %q, shows the password", err, got)
	}
	if want := `worker: nats: parse nats://u:xxxxx@h:4222: invalid port after host`; got != want {
		t.Errorf("Error = %q, want %q", got, want)
	}
	if w := redact.Wrap(err); w.Error() != got || !errors.Is(w, perr) {
		t.Errorf("Wrap = %q (Is the url.Error: %v), want %q and the url.Error in its chain", w, errors.Is(w, perr), got)
	}
	if plain := errors.New("nats: Authorization Violation"); redact.Wrap(plain) != plain {
		t.Errorf("Wrap of an error without a URL is not the error itself")
	}
}

func TestNKey(t *testing.T) {
	t.Parallel()
	const seed = "SUAMM7VUKSVJS4QB2EQHRCVTAGPCNAYL3WPYAGREB4BA57JIHV5MNVEJ4Q"
	if !redact.IsNKeySeed(seed) || redact.NKey(seed) != "(seed)" {
		t.Errorf("a seed: IsNKeySeed %v, NKey %q; want true, (seed)", redact.IsNKeySeed(seed), redact.NKey(seed))
	}
	if p := "/etc/pacer/user.nk"; redact.IsNKeySeed(p) || redact.NKey(p) != p {
		t.Errorf("a path is taken for a seed")
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	s := redact.NewSecrets("", "abc", "longer-secret", "head-part/tail-part")
	for in, want := range map[string]string{
		"pw longer-secret and abc":    "pw xxxxx and abc", // abc is shorter than MinLen
		"invalid port \":head-part\"": "invalid port \":xxxxx\"",
		"x head-part/tail-part y":     "x xxxxx y",
	} {
		if got := s.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	var buf bytes.Buffer
	log := slog.New(s.Handler(slog.NewTextHandler(&buf, nil))).With("url", "nats://longer-secret@h")
	log.Info("connecting with longer-secret", "err", errors.New("bad tail-part"), "n", 3,
		slog.Group("g", "pw", "longer-secret"), "list", []string{"longer-secret"})
	if out := buf.String(); strings.Contains(out, "secret") || strings.Contains(out, "tail-part") || !strings.Contains(out, "n=3") {
		t.Errorf("the log line shows a secret, or lost an attribute:\n%s", out)
	}
	buf.Reset()
	fmt.Fprintf(s.Writer(&buf), "redis: longer-secret\n")
	if buf.String() != "redis: xxxxx\n" {
		t.Errorf("Writer wrote %q", buf.String())
	}
	var none *redact.Secrets
	if none.String("longer-secret") != "longer-secret" {
		t.Errorf("a nil Secrets replaced something")
	}
}
