package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

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
			&cli.StringFlag{Name: "redis", Value: "127.0.0.1:6379", Usage: "Redis `ADDR`"},
			&cli.StringFlag{Name: "queue", Value: "default", Usage: "Asynq queue"},
			&cli.StringFlag{Name: "type", Value: "job", Usage: "task type"},
			&cli.IntFlag{Name: "max-retry", Value: 25, Usage: "the tasks' retry budget"},
		}, loadFlags...),
		Action: func(c *cli.Context) error {
			addr := c.String("redis")
			if from := c.String("from"); from != "" {
				var err error
				if addr, err = embeddedAddr(from, "redis"); err != nil {
					return cli.Exit("pacer enqueue: "+err.Error(), 1)
				}
			}
			cl := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
			defer cl.Close()
			q, typ, retry := c.String("queue"), c.String("type"), c.Int("max-retry")
			return generate(c, "enqueue", fmt.Sprintf("redis %s queue %s", addr, q), func(ctx context.Context, payload []byte) error {
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
			&cli.StringFlag{Name: "nats", Value: nats.DefaultURL, Usage: "NATS `URL`"},
			&cli.StringFlag{Name: "subject", Value: "jobs.demo", Usage: "subject"},
			&cli.BoolFlag{Name: "jetstream", Aliases: []string{"js"}, Usage: "publish to JetStream and wait for each ack"},
		}, loadFlags...),
		Action: func(c *cli.Context) error {
			url := c.String("nats")
			if from := c.String("from"); from != "" {
				var err error
				if url, err = embeddedAddr(from, "nats"); err != nil {
					return cli.Exit("pacer publish: "+err.Error(), 1)
				}
			}
			nc, err := nats.Connect(url, nats.Name("pacer publish"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("pacer publish: %s: %v", url, err), 1)
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
			err = generate(c, "publish", fmt.Sprintf("nats %s subject %s", url, subj), pub)
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
