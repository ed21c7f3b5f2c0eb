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

// The plugin API is declared here once and exported by package worker
// under the same names (type aliases: worker.Source is plugin.Source),
// because package worker's Main imports the CLI, which imports this
// registry. Package worker's docs are the contract; these repeat only
// what the runner relies on.

// Options is a plugin's table in config.toml ([worker.source] or
// [worker.sink]); *config.Plugin implements it (worker.Options).
type Options interface {
	// Kind returns the table's kind key.
	Kind() string
	// WorkerName returns the name of the worker the table belongs to.
	WorkerName() string
	// Decode decodes the table into v, a pointer to a struct with toml
	// tags (omit kind). Keys that v has no field for are reported as
	// unknown keys by pacer check and pacer run; errors name the line.
	Decode(v any) error
	// Errorf returns an error about the table's key that names the file
	// and line of the key.
	Errorf(key, format string, args ...any) error
}

// SinkFunc makes a sink from its table. It must not start anything
// (worker.SinkFunc).
type SinkFunc func(o Options) (sink.Sink, error)

// SourceFunc makes a source from its table. It must not connect
// (worker.SourceFunc).
type SourceFunc func(o Options) (Source, error)

// Source takes jobs from a queue for one worker (worker.Source documents
// the contract).
type Source interface {
	// Connect connects to the queue and returns the backlog probe for
	// the worker's pacer, or nil if the source cannot tell.
	Connect(ctx context.Context) (pacer.Probe, error)
	// Run takes jobs until ctx ends, then drains and returns nil; a
	// return before ctx ends is a failure.
	Run(ctx context.Context, env Env) error
}

// Producer is a Source that can also put jobs into its queue (the demo
// producer; worker.Producer).
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
// far (worker.Dropper).
type Dropper interface {
	Dropped() uint64
}

// Env is what the runner gives a Source's Run (worker.Env documents each
// field).
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
