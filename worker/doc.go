// Package worker is pacer's plugin API: a Go program adds a source or a
// sink kind of its own to config.toml and builds its own pacer binary.
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
// A worker takes jobs from a Source (built-in kinds asynq, jetstream,
// nats), asks its pacer.Pacer before each one, and hands it to a sink
// (built-in kinds exec, http, log; see package sink); the sink's outcome
// steers the pace. Each source or sink gets its own config table through
// Options. Main runs the pacer command (run, check, status, simulate,
// enqueue, publish) with every registered kind.
package worker
