package cli

import (
	"context"
	"fmt"
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
	"github.com/jobpacer/pacer/internal/status"
)

var loadFlags = []cli.Flag{
	&cli.IntFlag{Name: "count", Aliases: []string{"n"}, Value: 100, Usage: "how many jobs"},
	&cli.Float64Flag{Name: "rate", Aliases: []string{"r"}, Usage: "jobs per second (0: as fast as the broker takes them)"},
	&cli.StringFlag{Name: "payload", Aliases: []string{"p"}, Value: `{"n":{n}}`, Usage: "job payload; {n} becomes the job's number, from 1"},
	&cli.StringFlag{Name: "from", Usage: "the admin `ADDR` of a running `pacer run` whose embedded broker to use"},
	&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
}

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:  "enqueue",
		Usage: "put jobs into an Asynq queue (a load generator)",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "redis", Value: "127.0.0.1:6379", Usage: "Redis `ADDR`, or a redis:// or rediss:// URL"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "connect as the [redis] table of this config `FILE` says (TLS, ACL user, cluster, sentinel)"},
			&cli.StringFlag{Name: "queue", Value: "default", Usage: "Asynq queue"},
			&cli.StringFlag{Name: "type", Value: "job", Usage: "task type"},
			&cli.IntFlag{Name: "max-retry", Value: 25, Usage: "the tasks' retry budget"},
		}, loadFlags...),
		Action: func(c *cli.Context) error {
			r := config.Redis{Addr: c.String("redis")}
			if strings.Contains(r.Addr, "://") {
				r = config.Redis{URL: r.Addr}
			}
			if path := c.String("config"); path != "" {
				f, err := loadOrExit(path)
				if err != nil {
					return err
				}
				r = f.Redis
			}
			if from := c.String("from"); from != "" {
				addr, err := embeddedAddr(from, "redis")
				if err != nil {
					return cli.Exit("pacer enqueue: "+err.Error(), 1)
				}
				r = config.Redis{Addr: addr}
			}
			if r.Addr == config.Embedded {
				return cli.Exit(`pacer enqueue: [redis] addr is "embedded": use --from with the admin address of the pacer run that started it`, 2)
			}
			b := brokers.New(r, config.NATS{}, nil)
			opt, err := b.Redis()
			if err != nil {
				return cli.Exit("pacer enqueue: "+err.Error(), 1)
			}
			cl := asynq.NewClient(opt)
			defer cl.Close()
			q, typ, retry := c.String("queue"), c.String("type"), c.Int("max-retry")
			return generate(c, "enqueue", fmt.Sprintf("%s queue %s", b.RedisTarget(), q), func(ctx context.Context, payload []byte) error {
				_, err := cl.EnqueueContext(ctx, asynq.NewTask(typ, payload), asynq.Queue(q), asynq.MaxRetry(retry))
				return err
			})
		},
	}
}

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:  "publish",
		Usage: "publish jobs to a NATS subject (a load generator); --jetstream waits for the stream's ack",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "nats", Value: nats.DefaultURL, Usage: "NATS `URL` (several comma-separated)"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "connect as the [nats] table of this config `FILE` says (cluster, creds, nkey, user, token, TLS)"},
			&cli.StringFlag{Name: "subject", Value: "jobs.demo", Usage: "subject"},
			&cli.BoolFlag{Name: "jetstream", Aliases: []string{"js"}, Usage: "publish to JetStream and wait for each ack"},
		}, loadFlags...),
		Action: func(c *cli.Context) error {
			n := config.NATS{URL: c.String("nats")}
			if path := c.String("config"); path != "" {
				f, err := loadOrExit(path)
				if err != nil {
					return err
				}
				n = f.NATS
			}
			if from := c.String("from"); from != "" {
				url, err := embeddedAddr(from, "nats")
				if err != nil {
					return cli.Exit("pacer publish: "+err.Error(), 1)
				}
				n = config.NATS{URL: url}
			}
			if n.URL == config.Embedded {
				return cli.Exit(`pacer publish: [nats] url is "embedded": use --from with the admin address of the pacer run that started it`, 2)
			}
			b := brokers.New(config.Redis{}, n, nil)
			nc, err := b.ConnectNATS("pacer publish")
			if err != nil {
				return cli.Exit("pacer publish: "+err.Error(), 1)
			}
			defer nc.Close()
			subj := c.String("subject")
			pub := func(_ context.Context, payload []byte) error { return nc.Publish(subj, payload) }
			if c.Bool("jetstream") {
				js, err := jetstream.New(nc)
				if err != nil {
					return cli.Exit("pacer publish: "+err.Error(), 1)
				}
				pub = func(ctx context.Context, payload []byte) error {
					_, err := js.Publish(ctx, subj, payload)
					return err
				}
			}
			err = generate(c, "publish", fmt.Sprintf("%s subject %s", b.NATSTarget(), subj), pub)
			if err == nil {
				err = nc.Flush()
			}
			return err
		},
	}
}

func embeddedAddr(admin, kind string) (string, error) {
	st, _, err := status.Fetch(admin)
	if err != nil {
		return "", err
	}
	a := st.Embedded[kind]
	if a == "" {
		return "", fmt.Errorf("the pacer run at %s has no embedded %s", admin, kind)
	}
	return a, nil
}

// generate sends the --count jobs at --rate with send, drawing a
// progress bar on stderr, and prints what it did.
func generate(c *cli.Context, verb, target string, send loadgen.Send) error {
	count := c.Int("count")
	if count < 1 {
		return cli.Exit(fmt.Sprintf("pacer %s: --count %d: want ≥ 1", verb, count), 2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := loadgen.New(loadgen.Config{Count: count, Rate: c.Float64("rate"), Payload: c.String("payload"),
		Progress: c.App.ErrWriter, Quiet: c.Bool("quiet")})
	if err != nil {
		return cli.Exit(fmt.Sprintf("pacer %s: --rate: %v", verb, err), 2)
	}
	sent, took, err := g.Run(ctx, send)
	if err != nil {
		return cli.Exit(fmt.Sprintf("pacer %s: job %d to %s: %v", verb, sent+1, target, err), 1)
	}
	fmt.Fprintf(c.App.Writer, "%sd %d jobs to %s in %v (%.1f/s)\n", verb, sent, target,
		took.Round(time.Millisecond), float64(sent)/max(took.Seconds(), 1e-9))
	if sent < count {
		return cli.Exit(fmt.Sprintf("pacer %s: interrupted after %d of %d", verb, sent, count), 1)
	}
	return nil
}
