package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/plugin"
	_ "github.com/jobpacer/pacer/internal/sinks"   // the sink kinds exec, http, log
	_ "github.com/jobpacer/pacer/internal/sources" // the source kinds asynq, jetstream, nats
)

// Main runs the pacer command with args (os.Args) and returns its exit
// code: 0, 1 for a failure, 2 for a bad config or bad usage.
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
		// urfave/cli's own usage errors: unknown flag, missing value.
		fmt.Fprintln(app.ErrWriter, "pacer:", err)
		return 2
	}
	return 0
}

// DefaultConfig is the config file every command reads when neither
// --config, a path argument nor PACER_CONFIG names one.
const DefaultConfig = "config.toml"

// configFlag is --config/-c, given globally (pacer -c x.toml run) or to a
// command (pacer run -c x.toml); the command's wins. Only the global one
// reads PACER_CONFIG, so that a flag on the command line beats the
// environment.
func configFlag(global bool) *cli.StringFlag {
	f := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "the config `FILE` (default: " + DefaultConfig + ")"}
	if global {
		f.EnvVars = []string{"PACER_CONFIG"}
		f.Usage = "the config `FILE` of every command (default: " + DefaultConfig + ")"
	}
	return f
}

// adminFlag is --admin with PACER_ADMIN.
func adminFlag(usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "admin", EnvVars: []string{"PACER_ADMIN"}, Usage: usage}
}

// newApp returns the pacer command: run, check, status, simulate, enqueue,
// publish and completion.
func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, "pacer", c.App.Version) }
	return &cli.App{
		Name:                 "pacer",
		Usage:                "take jobs from queues at a safe, adaptive pace",
		Version:              version(),
		Suggest:              true,
		EnableBashCompletion: true,
		ErrWriter:            os.Stderr,
		ExitErrHandler:       func(*cli.Context, error) {}, // Main prints and exits
		Flags:                []cli.Flag{configFlag(true)},
		Action:               rootCmd,
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run the workers of a config until SIGTERM (SIGHUP reloads rate and base)",
				ArgsUsage: "[CONFIG]",
				Flags: []cli.Flag{
					configFlag(false),
					&cli.StringFlag{Name: "log-format", Usage: "text or json (default: the config's log_format)"},
					&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (default: the config's log_level)"},
					adminFlag("serve /metrics and /status on `ADDR` (default: the config's admin)"),
					&cli.BoolFlag{Name: "demo", Usage: "feed every worker's source with demo jobs"},
					&cli.Float64Flag{Name: "demo-rate", Value: 20, Usage: "jobs per second per worker that --demo feeds"},
				},
				Action: runCmd,
			},
			{
				Name:      "check",
				Usage:     "check a config without running it: every problem with file, line and key",
				ArgsUsage: "[CONFIG]",
				Flags: []cli.Flag{
					configFlag(false),
					&cli.BoolFlag{Name: "connect", Usage: "also connect to the Redis and NATS the workers use and say what answered (version, cluster, TLS), and dial every http sink"},
				},
				Action: checkCmd,
			},
			statusCommand(),
			simulateCommand(),
			enqueueCommand(),
			publishCommand(),
			completionCommand(),
		},
	}
}

// rootCmd is pacer without a command: the help, or an unknown command
// with the nearest one suggested.
func rootCmd(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowAppHelp(c)
	}
	name := c.Args().First()
	msg := fmt.Sprintf("pacer: %q is not a command", name)
	if s := cli.SuggestCommand(c.App.Commands, name); s != "" {
		msg += ". " + s // Did you mean "status"?
	}
	return cli.Exit(msg+" (pacer help lists the commands)", 2)
}

// configPath returns the config file a command reads: a path argument,
// else --config on the command, else --config before it or PACER_CONFIG,
// else DefaultConfig. Two different paths are an error, never a silent
// choice.
func configPath(c *cli.Context) (string, error) {
	flag := ""
	for _, ctx := range c.Lineage() {
		if v := ctx.String("config"); v != "" {
			flag = v
			break
		}
	}
	switch n := c.Args().Len(); {
	case n > 1:
		return "", usageError(c, "want at most one config file, got %d arguments: %s", n, strings.Join(c.Args().Slice(), " "))
	case n == 1:
		arg := c.Args().First()
		if flag != "" && flag != arg {
			return "", usageError(c, "two config files: --config %s and %s; give one", flag, arg)
		}
		return arg, nil
	case flag != "":
		return flag, nil
	}
	return DefaultConfig, nil
}

// usageError is exit code 2 with a message prefixed with the command.
func usageError(c *cli.Context, format string, args ...any) error {
	return cli.Exit(fmt.Sprintf("pacer %s: %s", c.Command.Name, fmt.Sprintf(format, args...)), 2)
}

// load reads the config a command names and checks it.
func load(c *cli.Context) (*config.File, error) {
	path, err := configPath(c)
	if err != nil {
		return nil, err
	}
	return loadOrExit(path)
}

func loadOrExit(path string) (*config.File, error) {
	f, err := plugin.Load(path)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return f, nil
}

// version returns the module version and the commit pacer was built
// from, as the Go toolchain recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += fmt.Sprintf(" (commit %s, %s%s)", rev, at, dirty)
	}
	return v + " " + bi.GoVersion
}
