package brokers_test

import (
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
)

// A managed Redis reached through rediss:// and a NATS account's creds
// file: what the logs say about them, and the Asynq option built.
func Example() {
	b := brokers.New(
		config.Redis{URL: "rediss://pacer:s3cret@cache.example.com:6380/1"},
		config.NATS{URLs: []string{"tls://nats-1.example.com:4222", "tls://nats-2.example.com:4222"}, Creds: "/etc/pacer/pacer.creds"},
		nil)
	defer b.Close()
	fmt.Println(b.RedisTarget())
	fmt.Println(b.NATSTarget())
	opt, _ := b.Redis()
	o := opt.(asynq.RedisClientOpt)
	fmt.Println(o.Addr, o.Username, o.DB, o.TLSConfig != nil)
	// Output:
	// redis cache.example.com:6380 db 1 user pacer (tls)
	// nats tls://nats-1.example.com:4222,tls://nats-2.example.com:4222 creds /etc/pacer/pacer.creds
	// cache.example.com:6380 pacer 1 true
}
