package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/redact"
	"github.com/jobpacer/pacer/internal/status"
)

// optionalConfig loads the config a command names, or returns nil if the
// command names none and the default file does not exist: status, enqueue
// and publish work without a config.
func optionalConfig(c *cli.Context) (*config.File, error) {
	path, err := configPath(c)
	if err != nil {
		return nil, err
	}
	explicit := path != DefaultConfig || c.Args().Present()
	for _, ctx := range c.Lineage() {
		explicit = explicit || ctx.String("config") != ""
	}
	f, err := plugin.Load(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, cli.Exit(err.Error(), 2)
	}
	return f, nil
}

// adminAddr returns the admin address of the running pacer run that a
// command talks to: --admin or PACER_ADMIN, else the config's admin, else
// config.DefaultAdmin.
func adminAddr(c *cli.Context) (string, error) {
	if a := c.String("admin"); a != "" {
		return a, nil
	}
	f, err := optionalConfig(c)
	if err != nil {
		return "", err
	}
	if f != nil {
		if f.Admin == "" {
			return "", usageError(c, "%s turns the admin server off (admin = \"\"): give --admin ADDR", f.Path)
		}
		return f.Admin, nil
	}
	return config.DefaultAdmin, nil
}

// redisOf returns the Redis that enqueue sends to and why there:
// --redis (or REDIS_ADDR, REDIS_URL: host:port or a redis:// or rediss://
// URL), else the config's [redis] (with its TLS, ACL user, cluster or
// sentinel), where "embedded" is the embedded Redis of the pacer run
// answering at the config's admin address, else the default address.
func redisOf(c *cli.Context, f *config.File) (config.Redis, string, error) {
	if v := c.String("redis"); v != "" {
		if strings.Contains(v, "://") {
			return config.Redis{URL: v}, "--redis or REDIS_ADDR/REDIS_URL", nil
		}
		return config.Redis{Addr: v}, "--redis or REDIS_ADDR/REDIS_URL", nil
	}
	if f == nil {
		return config.Redis{Addr: config.DefaultRedis}, "the default: no " + DefaultConfig + " here, and no --redis", nil
	}
	if f.Redis.Addr != config.Embedded {
		return f.Redis, "the [redis] of " + f.Path, nil
	}
	addr, why, err := embeddedOf(c, f, "redis", "--redis")
	return config.Redis{Addr: addr}, why, err
}

// natsOf is redisOf for publish: --nats (or NATS_URL), else the config's
// [nats], else the default URL.
func natsOf(c *cli.Context, f *config.File) (config.NATS, string, error) {
	if v := c.String("nats"); v != "" {
		return config.NATS{URL: v}, "--nats or NATS_URL", nil
	}
	if f == nil {
		return config.NATS{URL: config.DefaultNATS}, "the default: no " + DefaultConfig + " here, and no --nats", nil
	}
	if f.NATS.URL != config.Embedded {
		return f.NATS, "the [nats] of " + f.Path, nil
	}
	url, why, err := embeddedOf(c, f, "nats", "--nats")
	return config.NATS{URL: url}, why, err
}

// embeddedOf asks the pacer run at the config's admin address (or
// --admin) for the address of its embedded broker of kind.
func embeddedOf(c *cli.Context, f *config.File, kind, flag string) (string, string, error) {
	admin, err := adminAddr(c)
	if err != nil {
		return "", "", err
	}
	st, _, err := status.Fetch(admin)
	if err != nil {
		return "", "", cli.Exit(fmt.Sprintf("pacer %s: %s uses the embedded %s of a running `pacer run`, and none answers at %s (%v): start `pacer run` first, or give %s",
			c.Command.Name, f.Path, kind, admin, err, flag), 1)
	}
	a := st.Embedded[kind]
	if a == "" {
		return "", "", cli.Exit(fmt.Sprintf("pacer %s: the pacer run at %s has not started an embedded %s (no worker of it uses %s): give %s",
			c.Command.Name, admin, kind, kind, flag), 1)
	}
	return a, "the embedded " + kind + " of the pacer run at " + admin, nil
}

// hideSecrets makes everything the command writes from now on (its
// output, its errors, its log) go through s, which replaces the secrets
// of its [redis] and [nats] settings by redact.Mask.
func hideSecrets(c *cli.Context, s *redact.Secrets) {
	c.App.Writer, c.App.ErrWriter = s.Writer(c.App.Writer), s.Writer(c.App.ErrWriter)
}

// pingRedis dials the Redis of b once, with go-redis's own log lines off,
// and reports whether it answers PING.
func pingRedis(b *brokers.Brokers) error {
	redis.SetLogger(redisLog{slog.New(slog.DiscardHandler)})
	rdb, err := b.RedisClient(func(o *redis.UniversalOptions) {
		o.DialTimeout, o.MaxRetries = 3*time.Second, -1
	})
	if err != nil {
		return err
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err()
}
