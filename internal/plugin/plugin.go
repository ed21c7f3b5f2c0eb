package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/pacer"
)

// Options is a plugin's table in config.toml; *config.Plugin implements
// it. worker.Options has the same methods.
type Options interface {
	Kind() string
	WorkerName() string
	Decode(v any) error
	Errorf(key, format string, args ...any) error
}

// SinkFunc makes a sink from its table. It must not start anything.
type SinkFunc func(o Options) (sink.Sink, error)

// SourceFunc makes a source from its table. It must not connect.
type SourceFunc func(o Options) (Source, error)

// Source takes jobs from a broker for one worker; worker.Source documents
// the contract.
type Source interface {
	Connect(ctx context.Context) (pacer.Probe, error)
	Run(ctx context.Context, env Env) error
}

// Producer is a Source that can also put jobs into its queue (the demo
// producer).
type Producer interface {
	Produce(ctx context.Context, payload []byte) error
}

// HandlerPool is a Source whose Run itself runs at most Env.MaxInFlight
// handlers at once (a pool of that many), and takes pacer permits ahead
// of them for the jobs it is still fetching. For such a source the runner
// leaves max_in_flight out of the worker's pacer, unless latency_target
// is set: the cap then counts jobs running (handlers started, not done),
// and the fetching ahead is bounded by the source's own rules instead.
type HandlerPool interface {
	PoolsHandlers()
}

// Dropper is a Source that can lose jobs; Dropped returns how many so
// far.
type Dropper interface {
	Dropped() uint64
}

// Wrapper is a Source that wraps another one, such as a source
// registered through package worker: Producer and Dropper are looked for
// on what Unwrap returns.
type Wrapper interface {
	Unwrap() any
}

// As returns src, or what it wraps, as a T.
func As[T any](src Source) (T, bool) {
	if t, ok := src.(T); ok {
		return t, true
	}
	if w, ok := src.(Wrapper); ok {
		t, ok := w.Unwrap().(T)
		return t, ok
	}
	var zero T
	return zero, false
}

// Env is what the runner gives a Source's Run. worker.Env has the same
// fields, so that one converts to the other.
type Env struct {
	Worker       string
	Pacer        *pacer.Pacer
	Handle       func(j sink.Job) error
	Log          *slog.Logger
	DrainTimeout time.Duration
	MaxInFlight  int
}

var (
	mu      sync.RWMutex // guards sinks, sources
	sinks   = map[string]SinkFunc{}
	sources = map[string]SourceFunc{}
)

// RegisterSink makes a sink kind available to config.toml. It panics if
// kind is empty or already registered. It is safe for concurrent use.
func RegisterSink(kind string, f SinkFunc) {
	mu.Lock()
	defer mu.Unlock()
	if kind == "" || sinks[kind] != nil {
		panic(fmt.Sprintf("worker: RegisterSink(%q): empty or registered twice", kind))
	}
	sinks[kind] = f
}

// RegisterSource makes a source kind available to config.toml. It panics
// if kind is empty or already registered. It is safe for concurrent use.
func RegisterSource(kind string, f SourceFunc) {
	mu.Lock()
	defer mu.Unlock()
	if kind == "" || sources[kind] != nil {
		panic(fmt.Sprintf("worker: RegisterSource(%q): empty or registered twice", kind))
	}
	sources[kind] = f
}

// SinkKinds returns the registered sink kinds, sorted.
func SinkKinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Sorted(maps.Keys(sinks))
}

// SourceKinds returns the registered source kinds, sorted.
func SourceKinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Sorted(maps.Keys(sources))
}

// Load reads and checks a config file, building every source and sink
// table with the registered kinds (nothing connects). The error lists
// every problem, each with file, line and key.
func Load(path string) (*config.File, error) {
	return config.Load(path, build)
}

func build(p *config.Plugin) (any, error) {
	mu.RLock()
	snk, src := sinks[p.Kind()], sources[p.Kind()]
	mu.RUnlock()
	switch p.Section {
	case "sink":
		if snk == nil {
			return nil, p.Errorf("kind", "%q: want one of %s", p.Kind(), strings.Join(SinkKinds(), ", "))
		}
		return snk(p)
	default:
		if src == nil {
			return nil, p.Errorf("kind", "%q: want one of %s", p.Kind(), strings.Join(SourceKinds(), ", "))
		}
		return src(p)
	}
}
