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

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/redact"
	"github.com/jobpacer/pacer/internal/runner"
)

// newLogger returns a slog logger writing to w in format text or json at
// level (debug, info, warn, error).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
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
	path, err := configPath(c)
	if err != nil {
		return err
	}
	f, err := loadOrExit(path)
	if err != nil {
		return err
	}
	secrets := brokers.SecretsOf(f.Redis, f.NATS)
	hideSecrets(c, secrets)
	log, err := newLogger(c.App.ErrWriter, cmp.Or(c.String("log-format"), f.LogFormat), cmp.Or(c.String("log-level"), f.LogLevel))
	if err != nil {
		return cli.Exit("pacer: "+err.Error(), 2)
	}
	log = slog.New(secrets.Handler(log.Handler()))
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
				return cli.Exit("pacer: "+secrets.Error(err), 1)
			}
			return nil
		case s := <-sigs:
			switch {
			case s == syscall.SIGHUP:
				nf, err := plugin.Load(path)
				if err == nil {
					err = r.Reload(nf)
				}
				var refused *runner.ReloadError
				switch {
				case err == nil:
					log.Info("reload done", "config", path)
				case errors.As(err, &refused) && len(refused.Applied) > 0:
					log.Warn("reload partly applied: the refused changes keep their running values until a restart", "config", path,
						"applied", strings.Join(refused.Applied, "; "), "refused", strings.Join(refused.Refused, "; "))
				case errors.As(err, &refused):
					log.Error("reload refused: nothing applied; the running settings stay until a restart", "config", path,
						"refused", strings.Join(refused.Refused, "; "))
				default:
					log.Error("reload failed: nothing applied; the running settings stay", "err", redact.Error(err))
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
