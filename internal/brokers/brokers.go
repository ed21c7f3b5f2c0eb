package brokers

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/redact"
)

// Embedded is the broker address that makes Brokers start an in-process
// broker.
const Embedded = config.Embedded

// StartFunc starts an in-process broker on a free port of 127.0.0.1 and
// returns its address and a func that stops it. dir is where it keeps its
// data ("" for a temporary directory that stop removes).
type StartFunc func(log *slog.Logger, dir string) (addr string, stop func(), err error)

var (
	startMu  sync.Mutex // guards starters
	starters = map[string]StartFunc{}
)

// RegisterEmbedded makes the address "embedded" work for kind ("redis"
// or "nats"). It is safe for concurrent use.
func RegisterEmbedded(kind string, f StartFunc) {
	startMu.Lock()
	defer startMu.Unlock()
	starters[kind] = f
}

func starter(kind string) StartFunc {
	startMu.Lock()
	defer startMu.Unlock()
	return starters[kind]
}

// User is a source that connects through the run's Brokers: the runner
// calls UseBrokers before Connect.
type User interface {
	UseBrokers(b *Brokers)
}

// Brokers holds the broker addresses of a config and the connections the
// sources share. An address "embedded" starts an in-process broker the
// first time a source asks for it. It is safe for concurrent use.
type Brokers struct {
	redis config.Redis
	nats  config.NATS
	log   *slog.Logger
	where func(key string) string // where the config sets a key; nil: not known

	redisOnce sync.Once // makes rconn and rerr
	rconn     redisConn
	rerr      error

	natsMu sync.Mutex // guards nc; held while connecting
	nc     *nats.Conn

	usedRedis, usedNATS atomic.Bool // a source, probe, fleet or command asked for it

	secretsOnce sync.Once // makes secrets
	secrets     *redact.Secrets

	mu      sync.Mutex        // guards the fields below
	stops   []func()          // of the embedded brokers, in start order
	started map[string]string // kind → address of embedded brokers
}

// Used reports which brokers something asked for so far: the dashboard
// lists only those, not every [redis] and [nats] default.
func (b *Brokers) Used() (redis, nats bool) { return b.usedRedis.Load(), b.usedNATS.Load() }

// New returns Brokers for the [redis] and [nats] settings of a config.
func New(r config.Redis, n config.NATS, log *slog.Logger) *Brokers {
	if log == nil {
		log = slog.Default()
	}
	return &Brokers{redis: r, nats: n, log: log, started: map[string]string{}}
}

// InFile makes the connection errors of b say where f sets the address
// that failed ("redis 127.0.0.1:6390 (config.toml:4 redis.addr): dial
// tcp …"), and returns b. f is the config whose [redis] and [nats] b was
// made with.
func (b *Brokers) InFile(f *config.File) *Brokers {
	b.where = f.Where
	return b
}

// RedisAt is RedisTarget with where the config sets the address, for an
// error about connecting to it.
func (b *Brokers) RedisAt() string {
	r := b.redis
	key := "redis.addr"
	switch {
	case r.URL != "":
		key = "redis.url"
	case len(r.ClusterAddrs) > 0:
		key = "redis.cluster_addrs"
	case r.Sentinel.Master != "":
		key = "redis.sentinel.addrs"
	}
	return b.at(b.RedisTarget(), key, r.Addr == Embedded)
}

// NATSAt is NATSTarget with where the config sets the servers, for an
// error about connecting to them.
func (b *Brokers) NATSAt() string {
	key := "nats.url"
	if len(b.nats.URLs) > 0 {
		key = "nats.urls"
	}
	return b.at(b.NATSTarget(), key, b.nats.URL == Embedded)
}

func (b *Brokers) at(target, key string, embedded bool) string {
	if b.where == nil || embedded {
		return target
	}
	return target + " (" + b.where(key) + ")"
}

// embedded returns the address of the embedded broker of kind, starting
// it the first time. It requires b.mu held.
func (b *Brokers) embedded(kind, dir string) (string, error) {
	if a, ok := b.started[kind]; ok {
		return a, nil
	}
	start := starter(kind)
	if start == nil {
		return "", fmt.Errorf("%s address %q: this program has no embedded %s (the pacer command has); set an address", kind, Embedded, kind)
	}
	addr, stop, err := start(b.log, dir)
	if err != nil {
		return "", fmt.Errorf("embedded %s: %w", kind, err)
	}
	b.stops = append(b.stops, stop)
	b.started[kind] = addr
	return addr, nil
}

// RedisAddr returns the address of a single Redis server ([redis] addr
// or the host of url), starting the embedded Redis if the address is
// "embedded". It returns "" for a Redis Cluster or Sentinel.
func (b *Brokers) RedisAddr() (string, error) {
	b.usedRedis.Store(true)
	if b.redis.Addr != Embedded {
		c, err := b.redisConn()
		return c.addr, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.embedded("redis", "")
}

// Redis returns Asynq's connection options for the [redis] settings: an
// asynq.RedisClientOpt, RedisClusterClientOpt or RedisFailoverClientOpt.
// The Asynq source, its backlog probe and pacer enqueue use it.
func (b *Brokers) Redis() (asynq.RedisConnOpt, error) {
	c, err := b.redisConnStarted()
	if err != nil {
		return nil, err
	}
	switch {
	case len(c.cluster) > 0:
		return asynq.RedisClusterClientOpt{Addrs: c.cluster, Username: c.username, Password: c.password, TLSConfig: c.tls}, nil
	case c.master != "":
		return asynq.RedisFailoverClientOpt{MasterName: c.master, SentinelAddrs: c.sentinels,
			SentinelUsername: c.sentinelUser, SentinelPassword: c.sentinelPass,
			Username: c.username, Password: c.password, DB: c.db, TLSConfig: c.tls}, nil
	}
	return asynq.RedisClientOpt{Addr: c.addr, Username: c.username, Password: c.password, DB: c.db, TLSConfig: c.tls}, nil
}

// RedisClient returns a new go-redis client for the [redis] settings (a
// *redis.Client, *redis.ClusterClient or a Sentinel failover client); the
// caller closes it. tweak, if not nil, adjusts the options first (time
// outs, retries). The fleets and pacer check --connect use it.
func (b *Brokers) RedisClient(tweak func(*redis.UniversalOptions)) (redis.UniversalClient, error) {
	c, err := b.redisConnStarted()
	if err != nil {
		return nil, err
	}
	o := &redis.UniversalOptions{
		Username: c.username, Password: c.password, DB: c.db, TLSConfig: c.tls,
		MasterName: c.master, SentinelUsername: c.sentinelUser, SentinelPassword: c.sentinelPass,
	}
	switch {
	case len(c.cluster) > 0:
		o.Addrs, o.IsClusterMode = c.cluster, true
	case c.master != "":
		o.Addrs = c.sentinels
	default:
		o.Addrs = []string{c.addr}
	}
	if tweak != nil {
		tweak(o)
	}
	return redis.NewUniversalClient(o), nil
}

// RedisTarget describes the Redis that [redis] names, for logs and
// errors: addresses, the kind of deployment, the user and whether TLS is
// on, never a password.
func (b *Brokers) RedisTarget() string {
	c, err := b.redisConnStarted()
	if err != nil {
		return "redis (" + redact.Error(err) + ")"
	}
	var s string
	switch {
	case len(c.cluster) > 0:
		s = "redis cluster " + redact.URL(strings.Join(c.cluster, ","))
	case c.master != "":
		s = fmt.Sprintf("redis sentinel master %q via %s", c.master, redact.URL(strings.Join(c.sentinels, ",")))
	default:
		s = "redis " + redact.URL(c.addr)
	}
	if c.db != 0 {
		s += fmt.Sprintf(" db %d", c.db)
	}
	if c.username != "" {
		s += " user " + c.username
	}
	if c.tls != nil {
		s += " (tls)"
	}
	return s
}

// RedisKind returns the kind of Redis deployment that [redis] names
// ("server", "cluster" or "sentinel") and whether TLS is on.
func (b *Brokers) RedisKind() (kind string, tlsOn bool) {
	c, _ := b.redisConn()
	switch {
	case len(c.cluster) > 0:
		kind = "cluster"
	case c.master != "":
		kind = "sentinel"
	default:
		kind = "server"
	}
	return kind, c.tls != nil
}

// redisConn is the [redis] settings resolved: url parsed, files read.
type redisConn struct {
	addr                       string   // a single server
	cluster                    []string // seed nodes of a Redis Cluster
	master                     string   // Sentinel's name of the primary
	sentinels                  []string // Sentinel addresses
	sentinelUser, sentinelPass string
	username, password         string
	db                         int
	tls                        *tls.Config
}

// redisConnStarted is redisConn with the embedded Redis started if
// [redis] addr is "embedded".
func (b *Brokers) redisConnStarted() (redisConn, error) {
	c, err := b.redisConn()
	if err != nil || b.redis.Addr != Embedded {
		return c, err
	}
	c.addr, err = b.RedisAddr()
	return c, err
}

// redisConn resolves the [redis] settings once; the embedded address is
// left to RedisAddr.
func (b *Brokers) redisConn() (redisConn, error) {
	b.usedRedis.Store(true)
	b.redisOnce.Do(func() { b.rconn, b.rerr = resolveRedis(b.redis) })
	return b.rconn, b.rerr
}

func resolveRedis(r config.Redis) (redisConn, error) {
	c := redisConn{
		addr: r.Addr, cluster: r.ClusterAddrs, master: r.Sentinel.Master, sentinels: r.Sentinel.Addrs,
		sentinelUser: r.Sentinel.Username, sentinelPass: r.Sentinel.Password,
		username: r.Username, password: r.Password, db: r.DB,
	}
	t, err := TLSConfig(r.TLS)
	if err != nil {
		return c, fmt.Errorf("redis.tls: %w", err)
	}
	c.tls = t
	if r.URL != "" {
		o, err := redis.ParseURL(r.URL)
		if err != nil {
			return c, fmt.Errorf("redis.url: not a redis:// or rediss:// URL")
		}
		c.addr = o.Addr
		c.username = cmp.Or(c.username, o.Username)
		c.password = cmp.Or(c.password, o.Password)
		c.db = cmp.Or(c.db, o.DB)
		if o.TLSConfig != nil && c.tls == nil {
			c.tls = &tls.Config{MinVersion: tls.VersionTLS12} // rediss://: the system's roots, the host's name
		}
	}
	return c, nil
}

// TLSConfig returns the tls.Config of a [redis.tls] or [nats.tls] table,
// or nil if the table asks for no TLS. Its errors name the file that
// could not be used.
func TLSConfig(t config.TLS) (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca %q: no PEM certificate in the file", t.CA)
		}
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("cert %q, key %q: %w", t.Cert, t.Key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Secrets returns the secret values of the [redis] and [nats] settings
// (passwords, tokens, the password or token in each URL, an nkey seed
// given as nats.nkey) for redact to replace in whatever pacer shows.
func (b *Brokers) Secrets() *redact.Secrets {
	b.secretsOnce.Do(func() { b.secrets = SecretsOf(b.redis, b.nats) })
	return b.secrets
}

// SecretsOf returns the Secrets of [redis] r and [nats] n: see
// Brokers.Secrets.
func SecretsOf(r config.Redis, n config.NATS) *redact.Secrets {
	v := []string{r.Password, r.Sentinel.Password, n.Password, n.Token,
		redact.Credential(r.URL), redact.Credential(r.Addr), redact.Credential(n.URL)}
	for _, a := range append(append(slices.Clone(r.ClusterAddrs), r.Sentinel.Addrs...), n.URLs...) {
		v = append(v, redact.Credential(a))
	}
	for u := range strings.SplitSeq(n.URL, ",") {
		v = append(v, redact.Credential(strings.TrimSpace(u)))
	}
	if redact.IsNKeySeed(n.NKey) {
		v = append(v, n.NKey)
	}
	return redact.NewSecrets(v...)
}

// Log returns the run's logger.
func (b *Brokers) Log() *slog.Logger { return b.log }

// Embedded returns the addresses of the embedded brokers started so far,
// by kind ("redis", "nats").
func (b *Brokers) Embedded() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.started)
}

// Close closes the shared NATS connection and stops the embedded brokers.
func (b *Brokers) Close() {
	b.natsMu.Lock()
	if b.nc != nil {
		_ = b.nc.Drain()
		b.nc.Close()
		b.nc = nil
	}
	b.natsMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.stops) - 1; i >= 0; i-- {
		b.stops[i]()
	}
	b.stops = nil
}
