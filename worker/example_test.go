package worker_test

import (
	"context"
	"fmt"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/worker"
)

// countdown is a source of a fixed number of jobs.
type countdown struct{ jobs int }

func (c *countdown) Connect(context.Context) (pacer.Probe, error) { return nil, nil }

func (c *countdown) Run(ctx context.Context, env worker.Env) error {
	for n := 1; n <= c.jobs; n++ {
		pm, err := env.Pacer.Acquire(ctx, 1)
		if err != nil {
			return nil // ctx ended: nothing is in flight
		}
		pm.Done(env.Handle(sink.Job{ID: fmt.Sprint(n), Type: "countdown", Attempt: 1, Worker: env.Worker}))
	}
	<-ctx.Done()
	return nil
}

// A program adds a source kind and a sink kind to config.toml, then runs
// the pacer command with them; here `pacer check`, which builds every
// table of testdata/example.toml and connects nothing.
func Example() {
	worker.RegisterSource("memory", func(o worker.Options) (worker.Source, error) {
		var c struct {
			Jobs int `toml:"jobs"`
		}
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		if c.Jobs < 1 {
			return nil, o.Errorf("jobs", "%d: want ≥ 1", c.Jobs)
		}
		return &countdown{jobs: c.Jobs}, nil
	})
	worker.RegisterSink("stdout", func(o worker.Options) (sink.Sink, error) {
		return sink.Func(func(_ context.Context, j sink.Job) error {
			fmt.Println("job", j.ID)
			return nil
		}), o.Decode(&struct{}{})
	})
	code := worker.Main([]string{"pacer", "check", "-c", "testdata/example.toml"})
	fmt.Println("exit code", code)
	// Output:
	// testdata/example.toml: ok: 1 worker: mail (memory → stdout, rate 5/s, base 5/s)
	// exit code 0
}
