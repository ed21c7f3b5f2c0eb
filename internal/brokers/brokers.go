package brokers

import (
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"

	"github.com/jobpacer/pacer/internal/config"
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

	mu      sync.Mutex // guards the fields below
	stops   []func()   // of the embedded brokers, in start order
	nc      *nats.Conn
	started map[string]string // kind → address of embedded brokers
}

// New returns Brokers for the [redis] and [nats] settings of a config.
func New(r config.Redis, n config.NATS, log *slog.Logger) *Brokers {
	if log == nil {
		log = slog.Default()
	}
	return &Brokers{redis: r, nats: n, log: log, started: map[string]string{}}
}

// embedded returns the address of the embedded broker of kind, starting
// it the first time. It requires b.mu held.
func (b *Brokers) embedded(kind, dir string) (string, error) {
	if a, ok := b.started[kind]; ok {
		return a, nil
	}
	start := starter(kind)
	if start == nil {
		return "", fmt.Errorf("worker: %s address %q: this program has no embedded %s (the pacer command has); set an address", kind, Embedded, kind)
	}
	addr, stop, err := start(b.log, dir)
	if err != nil {
		return "", fmt.Errorf("worker: embedded %s: %w", kind, err)
	}
	b.stops = append(b.stops, stop)
	b.started[kind] = addr
	return addr, nil
}

// RedisAddr returns the Redis address, starting the embedded Redis if
// the address is "embedded".
func (b *Brokers) RedisAddr() (string, error) {
	if b.redis.Addr != Embedded {
		return b.redis.Addr, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.embedded("redis", "")
}

// Redis returns Asynq's connection options for the Redis server.
func (b *Brokers) Redis() (asynq.RedisClientOpt, error) {
	addr, err := b.RedisAddr()
	if err != nil {
		return asynq.RedisClientOpt{}, err
	}
	return asynq.RedisClientOpt{Addr: addr, Password: b.redis.Password, DB: b.redis.DB}, nil
}

// NATS returns the connection to the NATS server that the sources share,
// connecting the first time.
func (b *Brokers) NATS() (*nats.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nc != nil {
		return b.nc, nil
	}
	url := b.nats.URL
	if url == Embedded {
		var err error
		if url, err = b.embedded("nats", b.nats.StoreDir); err != nil {
			return nil, err
		}
	}
	nc, err := nats.Connect(url, nats.Name("pacer"), nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("worker: nats %s: %w", url, err)
	}
	b.nc = nc
	return nc, nil
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
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nc != nil {
		_ = b.nc.Drain()
		b.nc.Close()
		b.nc = nil
	}
	for i := len(b.stops) - 1; i >= 0; i-- {
		b.stops[i]()
	}
	b.stops = nil
}
