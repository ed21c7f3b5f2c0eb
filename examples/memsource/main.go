// Command memsource is pacer with a source kind of its own, built on the
// plugin API of package worker: "memory", an in-memory queue that starts
// with a given number of generated jobs. It shows what an SQS, Kafka or
// RabbitMQ source needs: a table of its own settings, a Connect that
// returns the backlog probe, and a Run that takes each job once the pacer
// admits it and drains on stop.
//
//	go run ./examples/memsource run -c examples/memsource/config.toml
//
// It runs every subcommand of pacer (check, status, simulate …); its
// config names real broker addresses only if a worker uses a built-in
// source, since the address "embedded" is the pacer command's alone.
package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/worker"
)

func main() {
	worker.RegisterSource("memory", newSource)
	os.Exit(worker.Main(os.Args))
}

// Config is the [worker.source] table of kind "memory".
type Config struct {
	// Jobs is how many jobs the queue starts with. The default value is
	// 100.
	Jobs int `toml:"jobs"`
	// Payload is each job's payload; {n} becomes the job's number, from
	// 1. The default value is `{"n":{n}}`.
	Payload string `toml:"payload"`
}

func newSource(o worker.Options) (worker.Source, error) {
	var c Config
	if err := o.Decode(&c); err != nil {
		return nil, err
	}
	if c.Jobs < 0 {
		return nil, o.Errorf("jobs", "%d: want ≥ 0 (0: 100)", c.Jobs)
	}
	if c.Jobs == 0 {
		c.Jobs = 100
	}
	if c.Payload == "" {
		c.Payload = `{"n":{n}}`
	}
	return &source{cfg: c}, nil
}

// source is an in-memory queue. A job whose sink fails goes back to the
// end of the queue; one that fails for good (sink.ErrPermanent) is
// dropped. Jobs still queued or in flight when the process exits are lost.
type source struct {
	cfg Config

	mu    sync.Mutex // guards queue
	queue []sink.Job
	ready chan struct{} // has a value while queue is not empty
}

// Connect fills the queue. A source of a real broker connects here, with
// the addresses of its table.
func (s *source) Connect(context.Context) (pacer.Probe, error) {
	s.ready = make(chan struct{}, 1)
	for n := 1; n <= s.cfg.Jobs; n++ {
		s.push(sink.Job{ID: strconv.Itoa(n), Type: "memory", Attempt: 1,
			Payload: []byte(strings.ReplaceAll(s.cfg.Payload, "{n}", strconv.Itoa(n)))})
	}
	return pacer.ProbeFunc(func(context.Context) (pacer.Backlog, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return pacer.Backlog{Pending: int64(len(s.queue))}, nil
	}), nil
}

func (s *source) push(j sink.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, j)
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// pop waits for a job until ctx ends.
func (s *source) pop(ctx context.Context) (sink.Job, bool) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			j := s.queue[0]
			s.queue = s.queue[1:]
			if len(s.queue) > 0 {
				select {
				case s.ready <- struct{}{}:
				default:
				}
			}
			s.mu.Unlock()
			return j, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return sink.Job{}, false
		case <-s.ready:
		}
	}
}

// Run takes a job, waits for the pacer to admit it and hands it to the
// sink in a goroutine of its own, so that up to max_in_flight jobs run at
// once. When ctx ends it takes no more and waits for the jobs in flight,
// at most env.DrainTimeout.
func (s *source) Run(ctx context.Context, env worker.Env) error {
	var inflight sync.WaitGroup
	for {
		j, ok := s.pop(ctx)
		if !ok {
			break
		}
		j.Worker = env.Worker
		pm, err := env.Pacer.Acquire(ctx, 1)
		if err != nil { // ctx ended, or the pacer was closed
			s.push(j)
			break
		}
		inflight.Go(func() {
			out := env.Handle(j)
			pm.Done(out)
			if out != nil && !errors.Is(out, sink.ErrPermanent) {
				j.Attempt++
				s.push(j)
			}
		})
	}
	drained := make(chan struct{})
	go func() { inflight.Wait(); close(drained) }()
	t := time.NewTimer(env.DrainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		env.Log.Warn("drain timeout: jobs in flight are lost", "worker", env.Worker)
	}
	return nil
}
