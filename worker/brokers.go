package worker

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is the broker address that makes Brokers start an in-process
// broker: miniredis for Redis, nats-server with JetStream for NATS.
const Embedded = "embedded"

// Brokers holds the broker addresses of a config and the connections the
// sources share. An address "embedded" starts an in-process broker on a
// free port of 127.0.0.1 the first time a source asks for it. It is safe
// for concurrent use.
type Brokers struct {
	redisAddr, redisPassword string
	redisDB                  int
	natsURL, storeDir        string
	log                      *slog.Logger

	mu      sync.Mutex // guards the fields below
	mini    *miniredis.Miniredis
	ns      *natsserver.Server
	tmpDir  string
	nc      *nats.Conn
	started map[string]string // kind → address of embedded brokers
}

// NewBrokers returns Brokers for a Redis address (host:port or embedded)
// and a NATS URL (or embedded); storeDir keeps the embedded NATS server's
// JetStream data ("" for a temporary directory removed by Close).
func NewBrokers(redisAddr, redisPassword string, redisDB int, natsURL, storeDir string, log *slog.Logger) *Brokers {
	if log == nil {
		log = slog.Default()
	}
	return &Brokers{redisAddr: redisAddr, redisPassword: redisPassword, redisDB: redisDB,
		natsURL: natsURL, storeDir: storeDir, log: log, started: map[string]string{}}
}

// RedisAddr returns the Redis address, starting the embedded Redis if
// the address is "embedded".
func (b *Brokers) RedisAddr() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.redisAddr != Embedded {
		return b.redisAddr, nil
	}
	if b.mini == nil {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return "", fmt.Errorf("worker: embedded redis: %w", err)
		}
		b.mini = m
		b.started["redis"] = m.Addr()
		b.log.Info("embedded redis started", "addr", m.Addr())
	}
	return b.mini.Addr(), nil
}

// Redis returns Asynq's connection options for the Redis server.
func (b *Brokers) Redis() (asynq.RedisClientOpt, error) {
	addr, err := b.RedisAddr()
	if err != nil {
		return asynq.RedisClientOpt{}, err
	}
	return asynq.RedisClientOpt{Addr: addr, Password: b.redisPassword, DB: b.redisDB}, nil
}

// NATSURL returns the NATS URL, starting the embedded NATS server if the
// URL is "embedded".
func (b *Brokers) NATSURL() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.natsURLLocked()
}

func (b *Brokers) natsURLLocked() (string, error) {
	if b.natsURL != Embedded {
		return b.natsURL, nil
	}
	if b.ns == nil {
		dir := b.storeDir
		if dir == "" {
			d, err := os.MkdirTemp("", "pacer-nats-")
			if err != nil {
				return "", fmt.Errorf("worker: embedded nats: %w", err)
			}
			b.tmpDir, dir = d, d
		}
		ns, err := natsserver.NewServer(&natsserver.Options{
			Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: dir,
			NoLog: true, NoSigs: true,
		})
		if err != nil {
			return "", fmt.Errorf("worker: embedded nats: %w", err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			ns.Shutdown()
			return "", fmt.Errorf("worker: embedded nats: not ready after 10s")
		}
		b.ns = ns
		b.started["nats"] = ns.ClientURL()
		b.log.Info("embedded nats started", "url", ns.ClientURL(), "store_dir", dir)
	}
	return b.ns.ClientURL(), nil
}

// NATS returns the connection to the NATS server that the sources share,
// connecting the first time.
func (b *Brokers) NATS() (*nats.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nc != nil {
		return b.nc, nil
	}
	url, err := b.natsURLLocked()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name("pacer"), nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("worker: nats %s: %w", url, err)
	}
	b.nc = nc
	return nc, nil
}

// Embedded returns the addresses of the embedded brokers started so far,
// by kind ("redis", "nats").
func (b *Brokers) Embedded() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]string, len(b.started))
	for k, v := range b.started {
		m[k] = v
	}
	return m
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
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
		b.ns = nil
	}
	if b.mini != nil {
		b.mini.Close()
		b.mini = nil
	}
	if b.tmpDir != "" {
		_ = os.RemoveAll(b.tmpDir)
		b.tmpDir = ""
	}
}
