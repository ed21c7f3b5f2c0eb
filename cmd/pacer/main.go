// Command pacer runs paced workers from a config.toml: jobs flow from
// Asynq queues and NATS subjects or streams to a command, an HTTP
// endpoint or the log at a safe, adaptive pace. See README.md, and
// `pacer help`.
package main

import (
	"os"

	_ "github.com/jobpacer/pacer/internal/embedded" // broker address "embedded": miniredis and nats-server in process
	"github.com/jobpacer/pacer/worker"
)

func main() { os.Exit(worker.Main(os.Args)) }
