package cli

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/config"
)

func checkCmd(c *cli.Context) error {
	f, err := load(c)
	if err != nil {
		return err
	}
	var names []string
	for _, w := range f.Workers {
		fleet := ""
		if w.Fleet != "" {
			fleet = fmt.Sprintf(", fleet %s %g/s", w.Fleet, f.Fleets[w.Fleet].Rate)
		}
		names = append(names, fmt.Sprintf("%s (%s → %s, rate %g/s, base %g/s%s)", w.Name, w.Source.Kind(), w.Sink.Kind(), w.Settings.Rate, w.Settings.Base, fleet))
	}
	fmt.Fprintf(c.App.Writer, "%s: ok: %s: %s\n", f.Path, plural(len(f.Workers), "worker"), strings.Join(names, "; "))
	if !c.Bool("connect") {
		return nil
	}
	failed := 0
	say := func(what string, err error) {
		if err != nil {
			failed++
			fmt.Fprintf(c.App.Writer, "  %s: FAILED: %v\n", what, err)
			return
		}
		fmt.Fprintf(c.App.Writer, "  %s: ok\n", what)
	}
	uses := map[string]bool{}
	for _, w := range f.Workers {
		switch w.Source.Kind() {
		case "asynq":
			uses["redis"] = true
		case "jetstream", "nats":
			uses["nats"] = true
		}
		if w.Fleet != "" {
			uses["redis"] = true
		}
	}
	if uses["redis"] {
		if f.Redis.Addr == config.Embedded {
			fmt.Fprintf(c.App.Writer, "  redis embedded: started by pacer run, nothing to dial\n")
		} else {
			say("redis "+f.Redis.Addr, pingRedis(c.Context, asynq.RedisClientOpt{Addr: f.Redis.Addr, Password: f.Redis.Password, DB: f.Redis.DB}))
		}
	}
	if uses["nats"] {
		if f.NATS.URL == config.Embedded {
			fmt.Fprintf(c.App.Writer, "  nats embedded: started by pacer run, nothing to dial\n")
		} else {
			nc, err := nats.Connect(f.NATS.URL, nats.Name("pacer check"), nats.Timeout(3*time.Second), nats.NoReconnect())
			if err == nil {
				nc.Close()
			}
			say("nats "+f.NATS.URL, err)
		}
	}
	for _, w := range f.Workers {
		if w.Sink.Kind() != "http" {
			continue
		}
		var h struct {
			URL string `toml:"url"`
		}
		if err := w.Sink.Decode(&h); err != nil {
			continue // Load has checked the table
		}
		u, err := url.Parse(h.URL)
		if err != nil {
			continue
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
		conn, err := net.DialTimeout("tcp", host, 3*time.Second)
		if err == nil {
			conn.Close()
		}
		u.User = nil
		say(fmt.Sprintf("worker %q http sink %s", w.Name, u.Redacted()), err)
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("pacer check --connect: %s did not answer", plural(failed, "address")), 1)
	}
	return nil
}

// pingRedis dials Redis once, with go-redis's own log lines off, and
// reports whether it answers PING.
func pingRedis(ctx context.Context, opt asynq.RedisClientOpt) error {
	redis.SetLogger(quietRedis{})
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB,
		DialTimeout: 3 * time.Second, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err()
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
