package worker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/worker"
)

// fullSource implements Source, Producer and Dropper.
type fullSource struct {
	env      worker.Env
	produced []string
}

func (s *fullSource) Connect(context.Context) (pacer.Probe, error) { return nil, nil }
func (s *fullSource) Run(_ context.Context, env worker.Env) error {
	s.env = env
	return errors.New("ran")
}
func (s *fullSource) Produce(_ context.Context, p []byte) error {
	s.produced = append(s.produced, string(p))
	return nil
}
func (s *fullSource) Dropped() uint64 { return 7 }

// bareSource implements Source only.
type bareSource struct{}

func (bareSource) Connect(context.Context) (pacer.Probe, error) { return nil, nil }
func (bareSource) Run(context.Context, worker.Env) error        { return nil }

func init() {
	worker.RegisterSource("test-full", func(o worker.Options) (worker.Source, error) {
		return &fullSource{}, o.Decode(&struct{}{})
	})
	worker.RegisterSource("test-bare", func(o worker.Options) (worker.Source, error) {
		var c struct {
			Size int `toml:"size"`
		}
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		if c.Size < 0 {
			return nil, o.Errorf("size", "%d: want ≥ 0", c.Size)
		}
		return bareSource{}, nil
	})
}

// load loads a config of one worker "w" whose source table is src.
func load(t *testing.T, src string) (plugin.Source, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	cfg := "admin = \"\"\n[[worker]]\nname = \"w\"\nrate = 5\n[worker.source]\n" + src + "\n[worker.sink]\nkind = \"log\"\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := plugin.Load(path)
	if err != nil {
		return nil, err
	}
	return f.Workers[0].Source.Built.(plugin.Source), nil
}

func TestRegisterSource(t *testing.T) {
	t.Run("the runner gets the registered source itself: its Producer and Dropper, and Run the runner's Env", func(t *testing.T) {
		src, err := load(t, `kind = "test-full"`)
		if err != nil {
			t.Fatal(err)
		}
		fs, ok := src.(*fullSource)
		if !ok {
			t.Fatalf("the built source is a %T, want the *fullSource registered (no wrapper)", src)
		}
		p, ok := src.(plugin.Producer)
		if !ok {
			t.Fatal("src.(plugin.Producer): false, want true")
		}
		if err := p.Produce(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		d, ok := src.(plugin.Dropper)
		if !ok || d.Dropped() != 7 {
			t.Fatalf("src.(plugin.Dropper) = %v, %v; want the source, Dropped() 7", d, ok)
		}
		env := plugin.Env{Worker: "w", MaxInFlight: 3, DrainTimeout: time.Second}
		if err := src.Run(context.Background(), env); err == nil || err.Error() != "ran" {
			t.Fatalf("Run() = %v, want the source's error", err)
		}
		if fs.env.Worker != "w" || fs.env.MaxInFlight != 3 || fs.env.DrainTimeout != time.Second {
			t.Errorf("Run got Env %+v, want worker w, max in flight 3, drain 1s", fs.env)
		}
		if len(fs.produced) != 1 || fs.produced[0] != "x" {
			t.Errorf("produced %q, want [x]", fs.produced)
		}
	})
	t.Run("a source without the optional interfaces has none", func(t *testing.T) {
		src, err := load(t, `kind = "test-bare"`)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := src.(plugin.Producer); ok {
			t.Error("src.(plugin.Producer): true, want false")
		}
		if _, ok := src.(plugin.Dropper); ok {
			t.Error("src.(plugin.Dropper): true, want false")
		}
	})
	t.Run("a table error names the key and its line", func(t *testing.T) {
		_, err := load(t, "kind = \"test-bare\"\nsize = -1")
		if err == nil || !strings.Contains(err.Error(), ":7:") || !strings.Contains(err.Error(), "size") || !strings.Contains(err.Error(), "-1: want ≥ 0") {
			t.Errorf("load(size = -1) = %v, want an error naming line 7, size and the rule", err)
		}
	})
	t.Run("an unknown key of the table is an error", func(t *testing.T) {
		_, err := load(t, "kind = \"test-bare\"\nsise = 1")
		if err == nil || !strings.Contains(err.Error(), "sise") {
			t.Errorf("load(sise = 1) = %v, want an error naming sise", err)
		}
	})
}

func TestRegisterPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"a built-in source kind", func() { worker.RegisterSource("nats", nil) }},
		{"a built-in sink kind", func() { worker.RegisterSink("log", nil) }},
		{"an empty source kind", func() { worker.RegisterSource("", nil) }},
		{"an empty sink kind", func() { worker.RegisterSink("", nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.f()
		})
	}
}
