package worker

import (
	"github.com/jobpacer/pacer/internal/plugin"
)

// The types below are the runner's own (type aliases of package
// internal/plugin, declared once there because Main imports the CLI that
// imports them): a Source registered here is the very value the runner
// calls, with no wrapper in between.

// Options is a plugin's table in config.toml ([worker.source] or
// [worker.sink]): the source or sink's own settings. Its methods are safe
// for concurrent use:
//   - Kind returns the table's kind key;
//   - WorkerName returns the name of the worker the table belongs to;
//   - Decode(v) decodes the table into v, a pointer to a struct with toml
//     tags (omit kind); keys that v has no field for are reported as
//     unknown keys by pacer check and pacer run, and errors name the line;
//   - Errorf(key, format, args...) returns an error about the table's key
//     that names the file and line of the key.
type Options = plugin.Options

// SinkFunc makes a sink from its table. It must not start anything: pacer
// check calls it too.
type SinkFunc = plugin.SinkFunc

// SourceFunc makes a source from its table. It must not connect: pacer
// check calls it too; Source.Connect does that. What the source needs to
// connect (addresses, credentials, names) comes from its own table.
type SourceFunc = plugin.SourceFunc

// Source takes jobs from a queue for one worker. The runner calls
// Connect, then Run in a goroutine of its own.
//
// Connect(ctx) connects to the queue and returns the backlog probe for the
// worker's pacer, or nil if the source cannot tell. ctx bounds the
// connection attempt (30 s).
//
// Run(ctx, env) takes jobs until ctx ends: each once env.Pacer admits it,
// handed to env.Handle, its permit's Done called with the outcome, and
// acked or returned to the queue. When ctx ends, Run stops taking, waits
// for the jobs in flight (at most env.DrainTimeout; jobs not finished by
// then go back to the queue), closes what Connect opened, and returns nil.
// If Run returns before ctx ends, the source has failed: the runner marks
// the worker down (/readyz answers 503) and calls Connect and Run again,
// with backoff, until recover_timeout.
//
// testutil.TestConsumer is the conformance suite a Source passes:
// examples/rabbitsource's suite_test.go runs it against that example's
// Source, as the runner drives it.
type Source = plugin.Source

// Producer is a Source that can also put jobs into its queue: with it,
// pacer run --demo feeds the worker with demo jobs. Produce(ctx, payload)
// may be called from another goroutine than Run's, once Connect has
// returned.
type Producer = plugin.Producer

// Dropper is a Source that can lose jobs (as core NATS does when its
// buffer is full); Dropped returns how many so far, for /status and
// /metrics. It must be safe to call from any goroutine.
type Dropper = plugin.Dropper

// Env is what the runner gives a Source's Run:
//   - Worker is the worker's name;
//   - Pacer is the worker's pacer: Acquire before each job;
//   - Handle runs one job through the sink and returns its outcome. It is
//     not cancelled by Run's ctx: jobs in flight finish during a drain.
//     Once DrainTimeout has passed (and a short grace), the sink's context
//     ends: a job still running is ended (an exec command is killed with
//     its process group) and Handle returns an error; the source should
//     then give the job back to its queue as not done. It is safe for
//     concurrent use;
//   - Log is the run's logger;
//   - DrainTimeout bounds the wait for jobs in flight once Run's ctx ends;
//   - MaxInFlight is the worker's max_in_flight (0: no cap).
type Env = plugin.Env

// RegisterSink makes a sink kind available to config.toml. It panics if
// kind is empty or already registered (the built-in kinds are exec, http
// and log); call it from init or main, before Main. It is safe for
// concurrent use.
func RegisterSink(kind string, f SinkFunc) { plugin.RegisterSink(kind, f) }

// RegisterSource makes a source kind available to config.toml. It panics
// if kind is empty or already registered (the built-in kinds are asynq,
// jetstream and nats); call it from init or main, before Main. It is safe
// for concurrent use.
func RegisterSource(kind string, f SourceFunc) { plugin.RegisterSource(kind, f) }
