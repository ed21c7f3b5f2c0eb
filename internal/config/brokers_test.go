package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jobpacer/pacer/internal/config"
)

const worker = "\n[[worker]]\nname = \"a\"\nrate = 1\n[worker.source]\nkind = \"x\"\n[worker.sink]\nkind = \"y\"\n"

func TestBrokerErrors(t *testing.T) {
	t.Setenv("PACER_TEST_PW", "s3cret-from-env")
	tests := []struct {
		name, data, want string
	}{
		{"addr and url", "[redis]\naddr = \"a:1\"\nurl = \"redis://b:1\"\n",
			"c.toml:3: redis.url: addr and url are both set: name the server one way"},
		{"url and sentinel", "[redis]\nurl = \"redis://b:1\"\n[redis.sentinel]\nmaster = \"m\"\naddrs = [\"s:1\"]\n",
			"c.toml:3: redis.sentinel: url and sentinel are both set"},
		{"a url that does not parse, its password not quoted", "[redis]\nurl = \"rediss://u:${PACER_TEST_PW}@h:port\"\n",
			"c.toml:2: redis.url: not a Redis URL: want redis://[user:password@]host:port[/db] or rediss://... for TLS"},
		{"a url of another scheme", "[redis]\nurl = \"http://h:1\"\n", "c.toml:2: redis.url: not a Redis URL"},
		{"a password in the url and a key", "[redis]\nurl = \"redis://:p@h:1\"\npassword = \"q\"\n",
			"c.toml:3: redis.password: the url has a password too: set it in one place"},
		{"a cluster address without a port", "[redis]\ncluster_addrs = [\"h:1\", \"h2\"]\n",
			"c.toml:2: redis.cluster_addrs[1]: \"h2\" is not host:port"},
		{"a cluster with a db", "[redis]\ncluster_addrs = [\"h:1\"]\ndb = 2\n", "c.toml:3: redis.db: 2: a Redis Cluster has only database 0"},
		{"a sentinel without master", "[redis.sentinel]\naddrs = [\"s:1\"]\n",
			"c.toml:1: redis.sentinel.master: missing: want the name the sentinels monitor"},
		{"a sentinel as an inline table without addrs", "[redis]\nsentinel = { master = \"m\" }\n",
			"c.toml:2: redis.sentinel.addrs: missing"},
		{"a TLS cert without key", "[redis.tls]\ncert = \"config_test.go\"\n",
			"c.toml:2: redis.tls.cert: cert and key go together"},
		{"a CA file that is not there", "[nats.tls]\nca = \"/nonexistent/ca.pem\"\n",
			"c.toml:2: nats.tls.ca: \"/nonexistent/ca.pem\": no such file or directory"},
		{"url and urls", "[nats]\nurl = \"nats://a:1\"\nurls = [\"nats://b:1\"]\n",
			"c.toml:3: nats.urls: url and urls are both set"},
		{"a NATS url of another scheme", "[nats]\nurls = [\"nats://a:1\", \"http://b:1\"]\n",
			"c.toml:2: nats.urls[1]: scheme \"http\": want nats://, tls://, ws:// or wss://"},
		{"two logins", "[nats]\nuser = \"u\"\npassword = \"p\"\ntoken = \"t\"\n",
			"c.toml:4: nats.token: user and token are both set: log in one way"},
		{"a password without user", "[nats]\npassword = \"${PACER_TEST_PW}\"\n", "c.toml:2: nats.password: a password without a user"},
		{"a creds file that is not there", "[nats]\ncreds = \"/nonexistent/x.creds\"\n", "c.toml:2: nats.creds: \"/nonexistent/x.creds\": no such file"},
		{"embedded with a login", "[nats]\nurl = \"embedded\"\ntoken = \"t\"\n", "c.toml:2: nats.url: \"embedded\" takes no creds"},
		{"a password that is not a quoted string, not quoted back", "[redis]\npassword = s3cret-unquoted\n",
			"c.toml:2: redis.password: not a valid TOML value: write it as a quoted string"},
		{"a variable that is not set", "[nats]\nuser = \"u\"\npassword = \"${PACER_TEST_NOT_SET}\"\n",
			"c.toml:3: nats.password: ${PACER_TEST_NOT_SET}: the environment variable PACER_TEST_NOT_SET is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("c.toml", tt.data+worker, build)
			var es config.Errors
			if !errors.As(err, &es) || len(es) != 1 || !strings.HasPrefix(es[0].Error(), tt.want) {
				t.Fatalf("Parse() = %v, want one error starting %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Parse() = %v: shows the password", err)
			}
		})
	}
}

func TestBrokerSettings(t *testing.T) {
	t.Setenv("PACER_TEST_PW", "s3cret-from-env")
	t.Setenv("PACER_TEST_HOST", "cache.example.com")
	f, err := config.Parse("c.toml", `
[redis]
url = "rediss://pacer:${PACER_TEST_PW}@${PACER_TEST_HOST}:6380/0"
[nats]
urls = ["nats://a:4222", "nats://b:4222"]
user = "pacer"
password = "${PACER_TEST_PW}"
[nats.tls]
enabled = true
`+worker, build)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Redis.URL, "rediss://pacer:s3cret-from-env@cache.example.com:6380/0"; got != want {
		t.Errorf("redis.url = %q, want %q (${NAME} replaced)", got, want)
	}
	if f.Redis.Addr != "" {
		t.Errorf("redis.addr = %q with url set, want \"\" (no default)", f.Redis.Addr)
	}
	if f.NATS.Password != "s3cret-from-env" || f.NATS.URL != "" || !f.NATS.TLS.On() {
		t.Errorf("nats = %+v, want the password from the environment, no default url, TLS on", f.NATS)
	}
	d, err := config.Parse("c.toml", worker, build)
	if err != nil {
		t.Fatal(err)
	}
	if d.Redis.Addr != config.DefaultRedis || d.NATS.URL != config.DefaultNATS {
		t.Errorf("defaults: redis.addr %q, nats.url %q; want %q, %q", d.Redis.Addr, d.NATS.URL, config.DefaultRedis, config.DefaultNATS)
	}
}
