// Package worker runs pacer's paced workers from a config.toml: the logic
// behind the pacer command (cmd/pacer), importable so that a Go program can
// add a source or a sink of its own and build its own binary:
//
//	func main() {
//		worker.RegisterSink("grpc", func(o worker.Options) (sink.Sink, error) {
//			var c struct{ Target string `toml:"target"` }
//			if err := o.Decode(&c); err != nil {
//				return nil, err
//			}
//			return newGRPCSink(c.Target)
//		})
//		os.Exit(worker.Main(os.Args))
//	}
//
// A worker takes jobs from a source (kinds asynq, jetstream, nats), asks
// its pacer.Pacer before each one, and hands it to a sink (kinds exec,
// http, log); the sink's outcome steers the pace. Runner runs the workers
// of a config, serves /metrics and /status on the admin address, reloads
// pace settings in place and drains on stop.
package worker
