package worker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
)

// Options is a plugin's table in config.toml ([worker.source] or
// [worker.sink]).
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

// SinkFunc makes a sink from its table. It must not start anything: pacer
// check calls it too.
type SinkFunc func(o Options) (sink.Sink, error)

// SourceFunc makes a source from its table. It must not connect: pacer
// check calls it too; Source.Connect does that.
type SourceFunc func(o Options) (Source, error)

// Source takes jobs from a broker for one worker.
type Source interface {
	// Connect connects to the broker of b and returns the backlog probe
	// for the worker's pacer, or nil if the source cannot tell.
	Connect(ctx context.Context, b *Brokers) (pacer.Probe, error)
	// Run takes jobs until ctx ends: each once env.Pacer admits it, handed
	// to env.Handle, its permit's Done called with the outcome, and acked
	// or returned to the broker. When ctx ends, Run stops taking, waits
	// for the jobs in flight (at most env.DrainTimeout; jobs not finished
	// by then go back to the broker), closes what Connect opened, and
	// returns nil.
	Run(ctx context.Context, env Env) error
}

// Producer is a Source that can also put jobs into its queue: the demo
// producer and the load generators use it.
type Producer interface {
	Produce(ctx context.Context, payload []byte) error
}

// Dropper is a Source that can lose jobs (core NATS when its buffer is
// full); Dropped returns how many so far.
type Dropper interface {
	Dropped() uint64
}

// Env is what Runner gives a Source's Run.
type Env struct {
	Worker string
	Pacer  *pacer.Pacer
	// Handle runs one job through the sink and returns its outcome. It is
	// not cancelled by Run's ctx: jobs in flight finish during a drain.
	Handle       func(j sink.Job) error
	Log          *slog.Logger
	DrainTimeout time.Duration
	// MaxInFlight is the worker's max_in_flight (0: no cap).
	MaxInFlight int
}

var (
	regMu   sync.RWMutex
	sinks   = map[string]SinkFunc{}
	sources = map[string]SourceFunc{}
)

// RegisterSink makes a sink kind available to config.toml. It panics if
// kind is empty or already registered; call it from init or main, before
// Main or NewRunner.
func RegisterSink(kind string, f SinkFunc) {
	regMu.Lock()
	defer regMu.Unlock()
	if kind == "" || sinks[kind] != nil {
		panic(fmt.Sprintf("worker: RegisterSink(%q): empty or registered twice", kind))
	}
	sinks[kind] = f
}

// RegisterSource makes a source kind available to config.toml. It panics
// if kind is empty or already registered.
func RegisterSource(kind string, f SourceFunc) {
	regMu.Lock()
	defer regMu.Unlock()
	if kind == "" || sources[kind] != nil {
		panic(fmt.Sprintf("worker: RegisterSource(%q): empty or registered twice", kind))
	}
	sources[kind] = f
}

// SinkKinds returns the registered sink kinds, sorted.
func SinkKinds() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	return slices.Sorted(maps.Keys(sinks))
}

// SourceKinds returns the registered source kinds, sorted.
func SourceKinds() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	return slices.Sorted(maps.Keys(sources))
}

func sinkFunc(kind string) SinkFunc {
	regMu.RLock()
	defer regMu.RUnlock()
	return sinks[kind]
}

func sourceFunc(kind string) SourceFunc {
	regMu.RLock()
	defer regMu.RUnlock()
	return sources[kind]
}
