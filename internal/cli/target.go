package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/plugin"
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

// broker says where a load generator sends jobs and why there.
type broker struct {
	addr string // host:port for Redis, a URL for NATS
	why  string // "--redis", "the embedded Redis of the pacer run at …"
}

// brokerOf returns the broker of kind ("redis" or "nats") that enqueue or
// publish use: the flag or its environment variable, else the broker of
// the config's running pacer run (asked at its admin address when the
// config says "embedded"), else the config's address, else def.
func brokerOf(c *cli.Context, kind, flag, env, def string, f *config.File) (broker, error) {
	if v := c.String(flag); v != "" {
		return broker{v, "--" + flag + " or " + env}, nil
	}
	if f == nil {
		return broker{def, "the default (no " + DefaultConfig + " here; --" + flag + " names another)"}, nil
	}
	addr := f.Redis.Addr
	if kind == "nats" {
		addr = f.NATS.URL
	}
	if addr != config.Embedded {
		return broker{addr, f.Path + "'s [" + kind + "]"}, nil
	}
	admin, err := adminAddr(c)
	if err != nil {
		return broker{}, err
	}
	st, _, err := status.Fetch(admin)
	if err != nil {
		return broker{}, cli.Exit(fmt.Sprintf("pacer %s: %s uses the embedded %s of a running `pacer run`, and none answers at %s (%v): start `pacer run` first, or give --%s ADDR",
			c.Command.Name, f.Path, kind, admin, err, flag), 1)
	}
	a := st.Embedded[kind]
	if a == "" {
		return broker{}, cli.Exit(fmt.Sprintf("pacer %s: the pacer run at %s has not started an embedded %s (no worker of it uses %s): give --%s ADDR",
			c.Command.Name, admin, kind, kind, flag), 1)
	}
	return broker{a, "the embedded " + kind + " of the pacer run at " + admin}, nil
}

// redisAddr turns REDIS_URL's redis://[:password@]host:port[/db] into the
// host:port --redis takes, or returns s as it is.
func redisAddr(s string) (addr, password string, db int, err error) {
	if !strings.Contains(s, "://") {
		return s, "", 0, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "redis" || u.Host == "" {
		return "", "", 0, fmt.Errorf("%q: want host:port or redis://[:password@]host:port[/db]", s)
	}
	password, _ = u.User.Password()
	if p := strings.Trim(u.Path, "/"); p != "" {
		if _, err := fmt.Sscan(p, &db); err != nil || db < 0 {
			return "", "", 0, fmt.Errorf("%q: the database %q is not a number ≥ 0", s, p)
		}
	}
	return u.Host, password, db, nil
}
