package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/pacer"
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

// generate sends count jobs at rate with send, drawing a progress bar on
// stderr.
func generate(c *cli.Context, verb, target string, send func(context.Context, []byte) error) error {
	count, rate, payload := c.Int("count"), c.Float64("rate"), c.String("payload")
	if count < 1 {
		return cli.Exit(fmt.Sprintf("pacer %s: --count %d: want ≥ 1", verb, count), 2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var tb *pacer.TokenBucket
	if rate > 0 {
		var err error
		if tb, err = pacer.NewTokenBucket(rate, 1, nil); err != nil {
			return cli.Exit(fmt.Sprintf("pacer %s: --rate: %v", verb, err), 2)
		}
	}
	bar := newProgress(c.App.ErrWriter, count, c.Bool("quiet"))
	start := time.Now()
	sent := 0
	for i := 1; i <= count; i++ {
		if tb != nil {
			if err := tb.Take(ctx, 1); err != nil {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		body := strings.ReplaceAll(payload, "{n}", strconv.Itoa(i))
		if err := send(ctx, []byte(body)); err != nil {
			bar.done(sent, time.Since(start))
			return cli.Exit(fmt.Sprintf("pacer %s: job %d to %s: %v", verb, i, target, err), 1)
		}
		sent++
		bar.update(sent, time.Since(start))
	}
	bar.done(sent, time.Since(start))
	fmt.Fprintf(c.App.Writer, "%sd %d jobs to %s in %v (%.1f/s)\n", verb, sent, target,
		time.Since(start).Round(time.Millisecond), float64(sent)/max(time.Since(start).Seconds(), 1e-9))
	if sent < count {
		return cli.Exit(fmt.Sprintf("pacer %s: interrupted after %d of %d", verb, sent, count), 1)
	}
	return nil
}

type progress struct {
	w     io.Writer
	total int
	quiet bool
	last  time.Time
}

func newProgress(w io.Writer, total int, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			tty = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, total: total, quiet: quiet || !tty}
}

func (p *progress) update(n int, el time.Duration) {
	if p.quiet || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw(n, el)
}

func (p *progress) draw(n int, el time.Duration) {
	const width = 30
	fill := n * width / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %3d%% %.1f/s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		n, p.total, n*100/p.total, float64(n)/max(el.Seconds(), 1e-9))
}

func (p *progress) done(n int, el time.Duration) {
	if p.quiet {
		return
	}
	p.draw(n, el)
	fmt.Fprintln(p.w)
}
