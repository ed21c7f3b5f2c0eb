package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/plugin"
	_ "github.com/jobpacer/pacer/internal/sinks"   // the sink kinds exec, http, log
	_ "github.com/jobpacer/pacer/internal/sources" // the source kinds asynq, jetstream, nats
)

// Main runs the pacer command with args (os.Args) and returns its exit
// code: 0, 1 for a failure, 2 for a bad config.
func Main(args []string) int {
	app := newApp()
	if err := app.Run(args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := ec.Error(); msg != "" {
				fmt.Fprintln(app.ErrWriter, msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(app.ErrWriter, "pacer:", err)
		return 1
	}
	return 0
}

// newApp returns the pacer command: run, check, status, simulate, enqueue
// and publish.
func newApp() *cli.App {
	configFlag := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "config.toml", Usage: "the config `FILE`"}
	return &cli.App{
		Name:            "pacer",
		Usage:           "take jobs from queues at a safe, adaptive pace",
		HideHelpCommand: true,
		ErrWriter:       os.Stderr,
		ExitErrHandler:  func(*cli.Context, error) {}, // Main prints and exits
		Commands: []*cli.Command{
			{
				Name:  "run",
				Usage: "run the workers of a config until SIGTERM (SIGHUP reloads rate and base)",
				Flags: []cli.Flag{
					configFlag,
					&cli.StringFlag{Name: "log-format", Usage: "text or json (default: the config's log_format)"},
					&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (default: the config's log_level)"},
					&cli.StringFlag{Name: "admin", Usage: "serve /metrics and /status on `ADDR` (default: the config's admin)"},
					&cli.BoolFlag{Name: "demo", Usage: "feed every worker's source with demo jobs"},
					&cli.Float64Flag{Name: "demo-rate", Value: 20, Usage: "jobs per second per worker that --demo feeds"},
				},
				Action: runCmd,
			},
			{
				Name:   "check",
				Usage:  "check a config: every problem with file, line and key; --connect also connects to its brokers",
				Flags:  []cli.Flag{configFlag, &cli.BoolFlag{Name: "connect", Usage: "connect to the Redis and NATS the workers use and say what answered (version, cluster, TLS)"}},
				Action: checkCmd,
			},
			statusCommand(),
			simulateCommand(),
			enqueueCommand(),
			publishCommand(),
		},
	}
}

func loadOrExit(path string) (*config.File, error) {
	f, err := plugin.Load(path)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return f, nil
}
