package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/redact"
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
	hideSecrets(c, brokers.SecretsOf(f.Redis, f.NATS))
	fmt.Fprintf(c.App.Writer, "%s: ok: %s: %s\n", f.Path, plural(len(f.Workers), "worker"), strings.Join(names, "; "))
	if c.Bool("connect") {
		return checkConnect(c.App.Writer, f)
	}
	return nil
}

// checkConnect connects to the brokers that the workers of f use and
// says what answered: server version, deployment, TLS; and dials the host
// of every http sink. It prints no password, token or seed.
func checkConnect(w io.Writer, f *config.File) error {
	needRedis, needNATS := false, false
	for _, wk := range f.Workers {
		switch wk.Source.Kind() {
		case "asynq":
			needRedis = true
		case "jetstream", "nats":
			needNATS = true
		}
		needRedis = needRedis || wk.Fleet != ""
	}
	discard := slog.New(slog.DiscardHandler)
	redis.SetLogger(redisLog{discard}) // its retries and sentinel switches are not the answer
	b := brokers.New(f.Redis, f.NATS, discard).InFile(f)
	failed := 0
	if needRedis {
		if f.Redis.Addr == config.Embedded {
			fmt.Fprintln(w, "redis: embedded: pacer run starts it; nothing to connect to")
		} else if what, err := connectRedis(b); err != nil {
			failed++
			fmt.Fprintf(w, "redis: FAILED: %s: %s\n", b.RedisAt(), b.Secrets().Error(err))
		} else {
			fmt.Fprintf(w, "redis: ok: %s: %s\n", b.RedisTarget(), what)
		}
	}
	if needNATS {
		if f.NATS.URL == config.Embedded {
			fmt.Fprintln(w, "nats: embedded: pacer run starts it; nothing to connect to")
		} else if what, err := connectNATS(b); err != nil {
			failed++
			fmt.Fprintf(w, "nats: FAILED: %s\n", b.Secrets().Error(err))
		} else {
			fmt.Fprintf(w, "nats: ok: %s: %s\n", b.NATSTarget(), what)
		}
	}
	if !needRedis && !needNATS {
		fmt.Fprintln(w, "no worker uses Redis or NATS: nothing to connect to")
	}
	for _, wk := range f.Workers {
		if wk.Sink.Kind() != "http" {
			continue
		}
		target, err := dialHTTPSink(wk.Sink)
		if target == "" {
			continue
		}
		if err != nil {
			failed++
			fmt.Fprintf(w, "worker %q http sink: FAILED: %s: %v\n", wk.Name, target, err)
		} else {
			fmt.Fprintf(w, "worker %q http sink: ok: %s answers (TCP)\n", wk.Name, target)
		}
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("pacer check --connect: %s did not answer", plural(failed, "address")), 1)
	}
	return nil
}

// dialHTTPSink opens a TCP connection to the host of an http sink's url,
// and returns the url without its password and query.
func dialHTTPSink(p *config.Plugin) (string, error) {
	var h struct {
		URL string `toml:"url"`
	}
	if err := p.Decode(&h); err != nil {
		return "", nil // Load has checked the table
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return "", nil
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	u.User, u.RawQuery = nil, ""
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err == nil {
		conn.Close()
	}
	return u.String(), err
}

func connectRedis(b *brokers.Brokers) (string, error) {
	rdb, err := b.RedisClient(func(o *redis.UniversalOptions) {
		o.DialTimeout, o.ReadTimeout, o.MaxRetries = 5*time.Second, 5*time.Second, -1
	})
	if err != nil {
		return "", err
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return "", err
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	version := infoField(info, "redis_version")
	kind := "a single server"
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		// CLUSTER NODES (every version): a line a node, its flags third.
		out, err := c.ClusterNodes(ctx).Result()
		if err != nil {
			return "", err
		}
		primaries, nodes := 0, 0
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) > 2 {
				nodes++
				if strings.Contains(f[2], "master") {
					primaries++
				}
			}
		}
		kind = fmt.Sprintf("a cluster of %d primaries, %d nodes", primaries, nodes)
	}
	deployment, tlsOn := b.RedisKind()
	if deployment == "sentinel" {
		role := infoField(rdb.Info(ctx, "replication").Val(), "role")
		kind = "the primary that the sentinels name (role " + role + ")"
	}
	return fmt.Sprintf("Redis %s, %s, %s", version, kind, onOff("TLS", tlsOn)), nil
}

func onOff(what string, on bool) string {
	if on {
		return what + " on"
	}
	return what + " off"
}

// infoField returns the value of key in the text of an INFO reply.
func infoField(info, key string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return "?"
}

func connectNATS(b *brokers.Brokers) (string, error) {
	nc, err := b.ConnectNATS("pacer check")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return "", err
	}
	s := fmt.Sprintf("nats-server %s at %s", nc.ConnectedServerVersion(), redact.URL(nc.ConnectedUrl()))
	if cl := nc.ConnectedClusterName(); cl != "" {
		s += fmt.Sprintf(", cluster %q of %d servers", cl, len(nc.Servers()))
	} else {
		s += ", no cluster"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js := false
	if j, err := jetstream.New(nc); err == nil {
		_, err = j.AccountInfo(ctx)
		js = err == nil
	}
	_, err = nc.TLSConnectionState()
	return s + ", " + onOff("JetStream", js) + ", " + onOff("TLS", err == nil), nil
}
