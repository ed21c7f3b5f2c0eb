package embedded

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/jobpacer/pacer/internal/brokers"
)

func init() {
	brokers.RegisterEmbedded("redis", Redis)
	brokers.RegisterEmbedded("nats", NATS)
}

// Redis starts miniredis on a free port of 127.0.0.1 and returns its
// address and a func that stops it. It keeps its data in memory: dir is
// not used.
func Redis(log *slog.Logger, _ string) (string, func(), error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return "", nil, err
	}
	log.Info("embedded redis started", "addr", m.Addr())
	return m.Addr(), m.Close, nil
}

// NATS starts nats-server with JetStream on a free port of 127.0.0.1,
// keeping its data in dir ("" for a temporary directory that stop
// removes), and returns its client URL and a func that stops it.
func NATS(log *slog.Logger, dir string) (string, func(), error) {
	tmp := ""
	if dir == "" {
		d, err := os.MkdirTemp("", "pacer-nats-")
		if err != nil {
			return "", nil, err
		}
		tmp, dir = d, d
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		removeTemp(tmp)
		return "", nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		removeTemp(tmp)
		return "", nil, fmt.Errorf("not ready after 10s")
	}
	log.Info("embedded nats started", "url", ns.ClientURL(), "store_dir", dir)
	stop := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		removeTemp(tmp)
	}
	return ns.ClientURL(), stop, nil
}

func removeTemp(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
