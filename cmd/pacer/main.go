// Command pacer runs paced workers from a config.toml: jobs flow from
// Asynq queues and NATS subjects or streams to a command, an HTTP
// endpoint or the log at a safe, adaptive pace. See docs/cli.md, and
// `pacer help`.
package main

// The pictures in docs/ are drawn by pacer simulate from the default
// config; TestDocsPicturesFresh fails when they are stale.
//go:generate go run . simulate -c ../../config.toml --scenario burst --out ../../docs/simulate-burst.svg
//go:generate go run . simulate -c ../../config.toml --scenario throttle-storm --out ../../docs/simulate-throttle-storm.svg
//go:generate go run . simulate -c ../../config.toml --scenario moving-capacity --out ../../docs/simulate-moving-capacity.svg
//go:generate go run . simulate -c ../../config.toml --scenario queueing --duration 6m --out ../../docs/simulate-queueing.svg

import (
	"os"

	_ "github.com/jobpacer/pacer/internal/embedded" // broker address "embedded": miniredis and nats-server in process
	"github.com/jobpacer/pacer/worker"
)

func main() { os.Exit(worker.Main(os.Args)) }
