package brokers_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
)

func TestEmbedded(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Run("an embedded address without a registered StartFunc is an error that says so", func(t *testing.T) {
		b := brokers.New(config.Redis{}, config.NATS{URL: brokers.Embedded}, log)
		defer b.Close()
		_, err := b.NATS()
		if err == nil || !strings.Contains(err.Error(), `nats address "embedded": this program has no embedded nats`) {
			t.Errorf("NATS() = %v, want an error naming the embedded nats address", err)
		}
	})
	t.Run("the StartFunc runs once, its address is reported, Close stops it", func(t *testing.T) {
		starts, stops := 0, 0
		brokers.RegisterEmbedded("redis", func(_ *slog.Logger, dir string) (string, func(), error) {
			starts++
			return "127.0.0.1:1", func() { stops++ }, nil
		})
		b := brokers.New(config.Redis{Addr: brokers.Embedded, Password: "p", DB: 3}, config.NATS{}, log)
		for range 2 {
			o, err := b.Redis()
			opt, _ := o.(asynq.RedisClientOpt)
			if err != nil || opt.Addr != "127.0.0.1:1" || opt.Password != "p" || opt.DB != 3 {
				t.Fatalf("Redis() = %+v, %v; want 127.0.0.1:1, password p, db 3", opt, err)
			}
		}
		if got := b.Embedded()["redis"]; got != "127.0.0.1:1" || starts != 1 {
			t.Errorf("Embedded()[redis] = %q after %d starts, want 127.0.0.1:1 after 1", got, starts)
		}
		b.Close()
		if stops != 1 {
			t.Errorf("Close stopped the embedded redis %d times, want 1", stops)
		}
	})
	t.Run("a real address starts nothing", func(t *testing.T) {
		b := brokers.New(config.Redis{Addr: "10.0.0.1:6379"}, config.NATS{}, log)
		defer b.Close()
		if addr, err := b.RedisAddr(); addr != "10.0.0.1:6379" || err != nil || len(b.Embedded()) != 0 {
			t.Errorf("RedisAddr() = %q, %v; Embedded() = %v; want the address, nothing embedded", addr, err, b.Embedded())
		}
	})
}
