package cli

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/loadgen"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/redact"
	"github.com/jobpacer/pacer/internal/sources"
)

var loadFlags = []cli.Flag{
	&cli.IntFlag{Name: "count", Aliases: []string{"n"}, Value: 100, Usage: "how many jobs"},
	&cli.Float64Flag{Name: "rate", Aliases: []string{"r"}, Usage: "jobs per second (0: as fast as the broker takes them)"},
	&cli.StringFlag{Name: "payload", Aliases: []string{"p"}, Value: `{"n":{n}}`, Usage: "job payload; {n} becomes the job's number, from 1"},
	&cli.StringFlag{Name: "admin", Aliases: []string{"from"}, EnvVars: []string{"PACER_ADMIN"},
		Usage: "the admin `ADDR` of the running pacer run whose embedded brokers to use (default: the config's admin)"},
	configFlag(false),
	&cli.StringFlag{Name: "worker", Usage: "send to the source of this worker of the config (default: the first of the right kind)"},
	&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
}

// checkLoadFlags refuses a bad --count or --rate before anything
// connects.
func checkLoadFlags(c *cli.Context) error {
	if _, err := configPath(c); err != nil { // at most one path argument
		return err
	}
	if n := c.Int("count"); n < 1 {
		return usageError(c, "--count %d: want ≥ 1", n)
	}
	if r := c.Float64("rate"); r < 0 || r != r {
		return usageError(c, "--rate %g: want jobs per second ≥ 0 (0: as fast as the broker takes them)", r)
	}
	return nil
}

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:      "enqueue",
		ArgsUsage: "[CONFIG]",
		Usage:     "put jobs into an Asynq queue (a load generator); by default where the config's first asynq worker takes them",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "redis", EnvVars: []string{"REDIS_ADDR", "REDIS_URL"},
				Usage: "Redis `ADDR`: host:port, or redis://[user:password@]host:port[/db] (rediss:// for TLS) (default: the config's, else 127.0.0.1:6379)"},
			&cli.StringFlag{Name: "queue", Usage: "Asynq queue (default: the config worker's, else " + sources.DefaultQueue + ")"},
			&cli.StringFlag{Name: "type", Usage: "task type (default: the config worker's task_type, else " + sources.DefaultTaskType + ")"},
			&cli.IntFlag{Name: "max-retry", Usage: "the tasks' retry budget", DefaultText: "the config worker's max_retry, else 25"},
		}, loadFlags...),
		Action: func(c *cli.Context) error {
			if err := checkLoadFlags(c); err != nil {
				return err
			}
			f, err := optionalConfig(c)
			if err != nil {
				return err
			}
			t, wname, err := targetOf(c, f, "asynq")
			if err != nil {
				return err
			}
			r, why, err := redisOf(c, f)
			if err != nil {
				return err
			}
			q := cmp.Or(c.String("queue"), t.Queue, sources.DefaultQueue)
			typ := cmp.Or(c.String("type"), t.TaskType, sources.DefaultTaskType)
			retry := cmp.Or(t.MaxRetry, sources.DefaultMaxRetry)
			if c.IsSet("max-retry") {
				retry = c.Int("max-retry")
			}
			b := brokers.New(r, config.NATS{}, slog.New(slog.DiscardHandler))
			defer b.Close()
			hideSecrets(c, b.Secrets())
			if err := pingRedis(b); err != nil {
				return cli.Exit(fmt.Sprintf("pacer enqueue: %s (%s): %s", b.RedisTarget(), why, b.Secrets().Error(err)), 1)
			}
			opt, err := b.Redis()
			if err != nil {
				return cli.Exit(fmt.Sprintf("pacer enqueue: %s (%s): %s", b.RedisTarget(), why, b.Secrets().Error(err)), 1)
			}
			cl := asynq.NewClient(opt)
			defer cl.Close()
			where := fmt.Sprintf("%s queue %s", b.RedisTarget(), q)
			fmt.Fprintf(c.App.ErrWriter, "pacer enqueue: to %s (%s%s)\n", where, why, wname)
			return generate(c, "enqueued", where, func(ctx context.Context, payload []byte) error {
				_, err := cl.EnqueueContext(ctx, asynq.NewTask(typ, payload), asynq.Queue(q), asynq.MaxRetry(retry))
				return err
			})
		},
	}
}

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:      "publish",
		ArgsUsage: "[CONFIG]",
		Usage:     "publish jobs to a NATS subject (a load generator); by default where the config's first jetstream or nats worker takes them",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "nats", EnvVars: []string{"NATS_URL"}, Usage: "NATS `URL` (default: the config's, else " + nats.DefaultURL + ")"},
			&cli.StringFlag{Name: "subject", Usage: "subject (default: one the config worker takes)"},
			&cli.BoolFlag{Name: "jetstream", Aliases: []string{"js"}, Usage: "publish to JetStream and wait for each ack (default: if the config worker's source is jetstream)"},
		}, loadFlags...),
		Action: func(c *cli.Context) error {
			if err := checkLoadFlags(c); err != nil {
				return err
			}
			f, err := optionalConfig(c)
			if err != nil {
				return err
			}
			t, wname, err := targetOf(c, f, "jetstream", "nats")
			if err != nil {
				return err
			}
			subj := cmp.Or(c.String("subject"), t.Subject)
			if subj == "" {
				return usageError(c, "no subject: give --subject (no jetstream or nats worker in a config here to take one from)")
			}
			useJS := t.Kind == "jetstream"
			if c.IsSet("jetstream") {
				useJS = c.Bool("jetstream")
			}
			n, why, err := natsOf(c, f)
			if err != nil {
				return err
			}
			b := brokers.New(config.Redis{}, n, slog.New(slog.DiscardHandler))
			defer b.Close()
			hideSecrets(c, b.Secrets())
			nc, err := b.ConnectNATS("pacer publish")
			if err != nil {
				return cli.Exit(fmt.Sprintf("pacer publish: %s (%s): %s", b.NATSTarget(), why, b.Secrets().Error(err)), 1)
			}
			defer nc.Close()
			pub := func(_ context.Context, payload []byte) error { return nc.Publish(subj, payload) }
			where := fmt.Sprintf("%s subject %s", b.NATSTarget(), subj)
			if useJS {
				js, err := jetstream.New(nc)
				if err != nil {
					return cli.Exit("pacer publish: "+err.Error(), 1)
				}
				where += " (JetStream)"
				pub = func(ctx context.Context, payload []byte) error {
					_, err := js.Publish(ctx, subj, payload)
					if err != nil && (t.Stream == "" || c.IsSet("subject")) {
						err = fmt.Errorf("%w (is there a stream with subject %s? without --jetstream, publish sends core NATS)", err, subj)
					}
					return err
				}
			}
			fmt.Fprintf(c.App.ErrWriter, "pacer publish: to %s (%s%s)\n", where, why, wname)
			err = generate(c, "published", where, pub)
			if err == nil {
				err = nc.Flush()
			}
			return err
		},
	}
}

// targetOf returns the source target of the config's worker that --worker
// names, or of its first worker of one of kinds, and ", worker NAME of
// FILE" to say so; the zero Target if there is no config.
func targetOf(c *cli.Context, f *config.File, kinds ...string) (sources.Target, string, error) {
	if f == nil {
		return sources.Target{}, "", nil
	}
	name := c.String("worker")
	for _, w := range f.Workers {
		t, ok := sources.TargetOf(w.Source.Built.(plugin.Source))
		if !ok || name != "" && w.Name != name {
			continue
		}
		for _, k := range kinds {
			if t.Kind == k {
				return t, fmt.Sprintf(", worker %q of %s", w.Name, f.Path), nil
			}
		}
		if name != "" {
			return t, "", usageError(c, "worker %q of %s takes jobs from %s, not %v", name, f.Path, t.Kind, kinds)
		}
	}
	if name != "" {
		return sources.Target{}, "", usageError(c, "no worker %q in %s", name, f.Path)
	}
	return sources.Target{}, "", nil
}

// generate sends the --count jobs at --rate with send, drawing a
// progress bar on stderr, and prints what it did ("enqueued 100 jobs to
// …").
func generate(c *cli.Context, did, target string, send loadgen.Send) error {
	verb := c.Command.Name
	count := c.Int("count")
	if count < 1 {
		return usageError(c, "--count %d: want ≥ 1", count)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := loadgen.New(loadgen.Config{Count: count, Rate: c.Float64("rate"), Payload: c.String("payload"),
		Progress: c.App.ErrWriter, Quiet: c.Bool("quiet")})
	if err != nil {
		return usageError(c, "--rate %g: want jobs per second ≥ 0 (0: as fast as the broker takes them)", c.Float64("rate"))
	}
	sent, took, err := g.Run(ctx, send)
	if err != nil {
		return cli.Exit(fmt.Sprintf("pacer %s: job %d to %s: %s", verb, sent+1, target, redact.Error(err)), 1)
	}
	fmt.Fprintf(c.App.Writer, "%s %s to %s in %v (%.1f/s)\n", did, plural(sent, "job"), target,
		took.Round(time.Millisecond), float64(sent)/max(took.Seconds(), 1e-9))
	if sent < count {
		return cli.Exit(fmt.Sprintf("pacer %s: interrupted after %d of %d", verb, sent, count), 1)
	}
	return nil
}

// plural returns "1 job", "2 jobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
