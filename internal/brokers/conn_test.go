package brokers_test

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/testenv"
)

func TestRedisSettings(t *testing.T) {
	t.Parallel()
	ca := testenv.NewTLSFiles(t).CA
	tests := []struct {
		name     string
		r        config.Redis
		want     asynq.RedisConnOpt // TLSConfig compared as on/off
		tls      bool
		kind     string
		target   string
		universe string // the go-redis client's type
	}{
		{"an addr", config.Redis{Addr: "10.0.0.1:6379", Password: "pw", DB: 2},
			asynq.RedisClientOpt{Addr: "10.0.0.1:6379", Password: "pw", DB: 2}, false, "server", "redis 10.0.0.1:6379 db 2", "*redis.Client"},
		{"a rediss:// url with user, password and db: TLS with the system's roots",
			config.Redis{URL: "rediss://pacer:pw@cache.example.com:6380/3"},
			asynq.RedisClientOpt{Addr: "cache.example.com:6380", Username: "pacer", Password: "pw", DB: 3}, true, "server",
			"redis cache.example.com:6380 db 3 user pacer (tls)", "*redis.Client"},
		{"a redis:// url whose password is a key, and a CA",
			config.Redis{URL: "redis://10.0.0.1:6379", Username: "pacer", Password: "pw", TLS: config.TLS{CA: ca}},
			asynq.RedisClientOpt{Addr: "10.0.0.1:6379", Username: "pacer", Password: "pw"}, true, "server",
			"redis 10.0.0.1:6379 user pacer (tls)", "*redis.Client"},
		{"cluster_addrs", config.Redis{ClusterAddrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, Username: "u", Password: "pw"},
			asynq.RedisClusterClientOpt{Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, Username: "u", Password: "pw"}, false, "cluster",
			"redis cluster 10.0.0.1:7000,10.0.0.2:7000 user u", "*redis.ClusterClient"},
		{"one cluster seed is still a cluster", config.Redis{ClusterAddrs: []string{"10.0.0.1:7000"}},
			asynq.RedisClusterClientOpt{Addrs: []string{"10.0.0.1:7000"}}, false, "cluster", "redis cluster 10.0.0.1:7000", "*redis.ClusterClient"},
		{"sentinel", config.Redis{Sentinel: config.Sentinel{Master: "m", Addrs: []string{"10.0.0.1:26379"}, Password: "spw"}, Password: "pw", DB: 1},
			asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"10.0.0.1:26379"}, SentinelPassword: "spw", Password: "pw", DB: 1},
			false, "sentinel", `redis sentinel master "m" via 10.0.0.1:26379 db 1`, "*redis.Client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := brokers.New(tt.r, config.NATS{}, slog.New(slog.DiscardHandler))
			got, err := b.Redis()
			if err != nil {
				t.Fatalf("Redis() error: %v", err)
			}
			tlsOn := false
			switch o := got.(type) {
			case asynq.RedisClientOpt:
				tlsOn, o.TLSConfig = o.TLSConfig != nil, nil
				got = o
			case asynq.RedisClusterClientOpt:
				tlsOn, o.TLSConfig = o.TLSConfig != nil, nil
				got = o
			case asynq.RedisFailoverClientOpt:
				tlsOn, o.TLSConfig = o.TLSConfig != nil, nil
				got = o
			}
			if !reflect.DeepEqual(got, tt.want) || tlsOn != tt.tls {
				t.Errorf("Redis() = %#v with TLS %v,\nwant %#v with TLS %v", got, tlsOn, tt.want, tt.tls)
			}
			if kind, on := b.RedisKind(); kind != tt.kind || on != tt.tls {
				t.Errorf("RedisKind() = %q, %v; want %q, %v", kind, on, tt.kind, tt.tls)
			}
			if got := b.RedisTarget(); got != tt.target {
				t.Errorf("RedisTarget() = %q, want %q", got, tt.target)
			}
			c, err := b.RedisClient(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := typeName(c); got != tt.universe {
				t.Errorf("RedisClient() is a %s, want a %s", got, tt.universe)
			}
		})
	}
}

func typeName(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.Client:
		return "*redis.Client"
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	}
	return "other"
}

func TestNATSTargetHidesSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    config.NATS
		want string
	}{
		{config.NATS{URL: "nats://u:secret@10.0.0.1:4222"}, "nats nats://u:xxxxx@10.0.0.1:4222"},
		{config.NATS{URL: "nats://secret@10.0.0.1:4222"}, "nats nats://xxxxx@10.0.0.1:4222"},
		{config.NATS{URLs: []string{"nats://a:4222", "tls://b:4222"}, Token: "secret"}, "nats nats://a:4222,tls://b:4222 token"},
		{config.NATS{URL: "nats://a:4222", User: "u", Password: "secret", TLS: config.TLS{Enabled: true}}, "nats nats://a:4222 user u (tls)"},
		{config.NATS{URL: "nats://a:4222", Creds: "/etc/pacer/app.creds"}, "nats nats://a:4222 creds /etc/pacer/app.creds"},
		{config.NATS{URL: "u:secret@10.0.0.1:4222"}, "nats u:xxxxx@10.0.0.1:4222"},
		{config.NATS{URL: "secret@10.0.0.1:4222, nats://u:secret@b:4222"}, "nats xxxxx@10.0.0.1:4222,nats://u:xxxxx@b:4222"},
		{config.NATS{URLs: []string{"secret@a:4222"}}, "nats xxxxx@a:4222"},
		{config.NATS{URL: "nats://u:se/cret@a:4222"}, "nats nats://u:xxxxx@a:4222"},
		{config.NATS{URL: "nats://a:4222", NKey: "SUAMM7VUKSVJS4QB2EQHRCVTAGPCNAYL3WPYAGREB4BA57JIHV5MNVEJ4Q"}, "nats nats://a:4222 nkey (seed)"},
		{config.NATS{URL: "nats://a:4222", NKey: "/etc/pacer/user.nk"}, "nats nats://a:4222 nkey /etc/pacer/user.nk"},
	}
	for _, tt := range tests {
		b := brokers.New(config.Redis{}, tt.n, nil)
		if got := b.NATSTarget(); got != tt.want || strings.Contains(got, "secret") {
			t.Errorf("NATSTarget() of %+v = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestSecretsOf(t *testing.T) {
	t.Parallel()
	const seed = "SUAMM7VUKSVJS4QB2EQHRCVTAGPCNAYL3WPYAGREB4BA57JIHV5MNVEJ4Q"
	s := brokers.SecretsOf(
		config.Redis{URL: "redis://:redis-url-pw@h:6379", Password: "redis-key-pw", Sentinel: config.Sentinel{Password: "sentinel-pw"}},
		config.NATS{URL: "nats-tok-1@a:4222, u:nats-url-pw@b:4222", URLs: []string{"nats://nats-tok-2@c:4222"}, Token: "nats-token", NKey: seed})
	for _, v := range []string{"redis-url-pw", "redis-key-pw", "sentinel-pw", "nats-tok-1", "nats-url-pw", "nats-tok-2", "nats-token", seed} {
		if got := s.String("a " + v + " b"); got != "a xxxxx b" {
			t.Errorf("SecretsOf(...).String(%q) = %q, want it hidden", v, got)
		}
	}
	if got := s.String("h:6379 user u"); got != "h:6379 user u" {
		t.Errorf("SecretsOf hides what is not a secret: %q", got)
	}
}
