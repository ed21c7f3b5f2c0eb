// Package cli is the pacer command: run, check, status, simulate,
// enqueue and publish, on urfave/cli. Package worker's Main runs it.
package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/runner"
	_ "github.com/jobpacer/pacer/internal/sinks"   // the sink kinds exec, http, log
	_ "github.com/jobpacer/pacer/internal/sources" // the source kinds asynq, jetstream, nats
)

// Main runs the pacer command with args (os.Args) and returns its exit
// code: 0, 1 for a failure, 2 for a bad config.
func Main(args []string) int {
	app := App()
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

// App returns the pacer command: run, check, status, simulate, enqueue
// and publish.
func App() *cli.App {
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
				Usage:  "check a config: every problem with file, line and key",
				Flags:  []cli.Flag{configFlag},
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

func checkCmd(c *cli.Context) error {
	f, err := loadOrExit(c.String("config"))
	if err != nil {
		return err
	}
	var names []string
	for _, w := range f.Workers {
		fleet := ""
		if w.Fleet != "" {
			fleet = fmt.Sprintf(", fleet %s %g/s", w.Fleet, f.Fleets[w.Fleet].Rate)
		}
		names = append(names, fmt.Sprintf("%s (%s → %s, rate %g/s, base %g/s%s)", w.Name, w.Source.Kind(), w.Sink.Kind(), w.Rate, w.Base, fleet))
	}
	fmt.Fprintf(c.App.Writer, "%s: ok: %d worker(s): %s\n", f.Path, len(f.Workers), strings.Join(names, "; "))
	return nil
}

// NewLogger returns a slog logger writing to w in format text or json at
// level (debug, info, warn, error).
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func runCmd(c *cli.Context) error {
	path := c.String("config")
	f, err := loadOrExit(path)
	if err != nil {
		return err
	}
	log, err := NewLogger(c.App.ErrWriter, cmp.Or(c.String("log-format"), f.LogFormat), cmp.Or(c.String("log-level"), f.LogLevel))
	if err != nil {
		return cli.Exit("pacer: "+err.Error(), 2)
	}
	slog.SetDefault(log)
	redis.SetLogger(redisLog{log})
	opts := runner.RunOptions{Admin: c.String("admin")}
	if c.Bool("demo") {
		opts.Demo = c.Float64("demo-rate")
	}
	r := runner.New(f, log, opts)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	log.Info("pacer running", "config", path, "workers", len(f.Workers), "pid", os.Getpid())
	stopping := false
	for {
		select {
		case err := <-done:
			if err != nil {
				return cli.Exit("pacer: "+err.Error(), 1)
			}
			return nil
		case s := <-sigs:
			switch {
			case s == syscall.SIGHUP:
				nf, err := plugin.Load(path)
				if err == nil {
					err = r.Reload(nf)
				}
				if err != nil {
					log.Error("reload failed; the running settings stay", "err", err.Error())
				} else {
					log.Info("reload done", "config", path)
				}
			case !stopping:
				stopping = true
				log.Info("stopping on signal; a second signal exits at once", "signal", s.String())
				cancel()
			default:
				log.Warn("second signal: exiting now; jobs in flight go back to their broker after their lease", "signal", s.String())
				os.Exit(1)
			}
		}
	}
}

// redisLog sends go-redis's own messages (a failed dial, retried) to slog
// at debug level: a fleet's fallback is logged once, at warn, by
// redisbucket, and a Redis outage must not flood the log.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.l.Debug(fmt.Sprintf(format, v...), "from", "go-redis")
}
