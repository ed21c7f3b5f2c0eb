package main_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/internal/testenv"
)

// The tests in this file start real servers on free ports as production
// runs them (TLS, ACL users, Redis Cluster, Sentinel, NATS accounts and
// clusters) and have the pacer binary drain a queue or stream of unique
// jobs to an http sink that counts them: all delivered, none lost. Every
// job is put in by `pacer enqueue --config` or `pacer publish --config`,
// so the load generators use the same [redis] and [nats] settings as
// `pacer run`. Each also runs `pacer check --connect` and checks that no
// secret shows in any output.

// connRun is one drain: the broker tables of a config, the source table,
// how to put the jobs in, and the secrets that must show nowhere.
type connRun struct {
	brokers string   // [redis] or [nats] tables
	source  string   // the [worker.source] table's keys
	produce []string // pacer args that put n jobs in; --config and -n are added
	n       int
	rate    float64 // the worker's rate; 0 = 400
	secrets []string
	connect []string // what check --connect must say
	fleet   string   // a [fleet.NAME] table, or ""
	worker  string   // extra keys of the [[worker]]
	procs   int      // pacer run processes; 0 = 1
}

func (c connRun) config(sinkURL, proc string) string {
	return fmt.Sprintf(`
status_every = "1s"
drain_timeout = "5s"
log_level = "debug"
%s
%s
[[worker]]
name = "conn"
rate = %g
max_in_flight = 20
%s
[worker.source]
%s
[worker.sink]
kind = "http"
url = %q
headers = { X-Proc = %q }
`, c.brokers, c.fleet, cmp.Or(c.rate, 400), c.worker, c.source, sinkURL, proc)
}

// writeCfg writes a config into dir and returns its path.
func writeCfg(t *testing.T, dir, cfg string) string {
	t.Helper()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noSecrets fails t if a secret shows in out.
func noSecrets(t *testing.T, where, out string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("%s shows the secret %.4s…:\n%s", where, s, tailLines(out, 20))
		}
	}
}

// arrival is a job at the sink: its id, the process that sent it, when.
type arrival struct {
	id, proc string
	at       time.Time
}

// arrivals is a counting sink's record.
type arrivals struct {
	mu   sync.Mutex
	list []arrival
}

func (a *arrivals) snapshot() []arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.list)
}

func (a *arrivals) distinct() int {
	ids := map[string]bool{}
	for _, x := range a.snapshot() {
		ids[x.id] = true
	}
	return len(ids)
}

// countingSink is an http sink that records every job.
func countingSink(t *testing.T) (*httptest.Server, *arrivals) {
	a := &arrivals{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.list = append(a.list, arrival{r.Header.Get("X-Pacer-Job-Id"), r.Header.Get("X-Proc"), time.Now()})
		a.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, a
}

// drainAll runs c: check --connect, pacer run (c.procs processes), put
// the jobs in, call during (if not nil), wait until the sink has every
// job, stop; it checks that no output shows a secret and returns the
// runs and what the sink got.
func drainAll(t *testing.T, c connRun, during func(ps []*proc, got *arrivals)) ([]*proc, *arrivals) {
	t.Helper()
	srv, got := countingSink(t)
	var ps []*proc
	var cfg string
	for i := range max(c.procs, 1) {
		dir := t.TempDir()
		cfg = writeCfg(t, dir, c.config(srv.URL, strconv.Itoa(i+1)))
		if i == 0 {
			out, code := pacer(t, "check", "--connect", "--config", cfg)
			t.Logf("pacer check --connect:\n%s", out)
			if code != 0 {
				t.Fatalf("pacer check --connect: exit %d:\n%s", code, out)
			}
			for _, want := range c.connect {
				if !strings.Contains(out, want) {
					t.Errorf("pacer check --connect says\n%s\nwant it to say %q", out, want)
				}
			}
			noSecrets(t, "pacer check --connect", out, c.secrets)
		}
		ps = append(ps, startRun(t, dir, c.config(srv.URL, strconv.Itoa(i+1))))
	}
	args := append(append([]string{}, c.produce...), "--config", cfg, "-n", strconv.Itoa(c.n), "-q")
	if out, code := pacer(t, args...); code != 0 {
		t.Fatalf("pacer %s: exit %d: %s", strings.Join(args, " "), code, out)
	} else {
		noSecrets(t, "pacer "+c.produce[0], out, c.secrets)
	}
	if during != nil {
		during(ps, got)
	}
	testenv.WaitFor(t, 45*time.Second, fmt.Sprintf("all %d jobs at the sink", c.n), func() bool { return got.distinct() >= c.n })
	for _, p := range ps {
		_, raw := statusRaw(t, p)
		noSecrets(t, "pacer status", raw, c.secrets)
	}
	for _, p := range ps {
		p.stop(15 * time.Second)
		noSecrets(t, "pacer run's log", p.log.String(), c.secrets)
	}
	if d := got.distinct(); d != c.n {
		t.Errorf("%d distinct jobs reached the sink, want %d", d, c.n)
	}
	t.Logf("%d distinct jobs of %d at the sink, %d deliveries", got.distinct(), c.n, len(got.snapshot()))
	return ps, got
}

var queues sync.Map // test name → its queue

// queueOf returns the Asynq queue of t, the same at each call.
func queueOf(t *testing.T) string {
	q, _ := queues.LoadOrStore(t.Name(), testenv.UniqueName(t))
	return q.(string)
}

func asynqSource(t *testing.T) string { return fmt.Sprintf("kind = \"asynq\"\nqueue = %q", queueOf(t)) }

func statusRaw(t *testing.T, p *proc) (string, string) {
	t.Helper()
	out, code := pacer(t, "status", "--admin", p.admin, "--json")
	if code != 0 {
		t.Fatalf("pacer status --json: exit %d: %s", code, out)
	}
	table, _ := pacer(t, "status", "--admin", p.admin)
	return table, out + table
}

// A managed Redis as it is sold: TLS only (rediss://, the CA of the
// provider), an ACL user, the default user off; the password comes from
// the environment through ${PACER_REDIS_PASSWORD}.
func TestRedisTLSWithACLUser(t *testing.T) {
	files := testenv.NewTLSFiles(t)
	const password = "Redis-ACL-pw-5f1c9e"
	r := testenv.RedisTLS(t, files, "--user", "default", "off", "--user", "pacer", "on", ">"+password, "~*", "&*", "+@all")
	t.Setenv("PACER_REDIS_PASSWORD", password)
	drainAll(t, connRun{
		brokers: fmt.Sprintf(`
[redis]
url = "rediss://pacer:${PACER_REDIS_PASSWORD}@%s"
[redis.tls]
ca = %q
`, r.Addr(), files.CA),
		source:  asynqSource(t),
		produce: []string{"enqueue", "--queue", queueOf(t)},
		n:       200,
		secrets: []string{password},
		connect: []string{"redis: ok: redis " + r.Addr() + " user pacer (tls): Redis 7", "a single server, TLS on"},
	}, nil)
}

// A Redis that asks for a client certificate, reached by addr with
// [redis.tls] ca, cert, key and a server_name other than the host dialled.
func TestRedisClientCertificate(t *testing.T) {
	t.Parallel()
	files := testenv.NewTLSFiles(t)
	r := testenv.RedisTLS(t, files, "--tls-auth-clients", "yes")
	drainAll(t, connRun{
		brokers: fmt.Sprintf("[redis]\naddr = %q\n[redis.tls]\nca = %q\ncert = %q\nkey = %q\nserver_name = \"localhost\"\n",
			r.Addr(), files.CA, files.ClientCert, files.ClientKey),
		source:  asynqSource(t),
		produce: []string{"enqueue", "--queue", queueOf(t)},
		n:       100,
		connect: []string{"redis: ok: redis " + r.Addr() + " (tls): Redis 7", "TLS on"},
	}, nil)
	// Without the certificate the server refuses.
	cfg := writeCfg(t, t.TempDir(), fmt.Sprintf("admin = \"\"\n[redis]\naddr = %q\n[redis.tls]\nca = %q\n[[worker]]\nname = \"w\"\nrate = 1\n[worker.source]\nkind = \"asynq\"\n[worker.sink]\nkind = \"log\"\n", r.Addr(), files.CA))
	if out, code := pacer(t, "check", "--connect", "--config", cfg); code == 0 || !strings.Contains(out, "redis: FAILED") {
		t.Errorf("pacer check --connect without a client certificate: exit %d:\n%s\nwant redis: FAILED", code, out)
	}
}

// A NATS server that asks for TLS and a login, in four ways: user and
// password (with a client certificate, and a list of URLs whose first
// server is down), token, nkey seed file, and an account's creds file in
// operator mode.
func TestNATSTLSAndLogins(t *testing.T) {
	t.Parallel()
	files := testenv.NewTLSFiles(t)
	dead := fmt.Sprintf("nats://127.0.0.1:%d", testenv.FreePort(t))
	const password, token = "nats-pw-0b9d41", "nats-token-77c3ae"
	nkeyConf, seedFile, seed := testenv.NATSNKey(t)
	accConf, credsFile, credsSeed := testenv.NATSAccount(t)
	tlsConf, tlsNoCert := testenv.NATSTLS(t, files, true), testenv.NATSTLS(t, files, false)
	tlsTable := fmt.Sprintf("[nats.tls]\nca = %q\ncert = %q\nkey = %q\n", files.CA, files.ClientCert, files.ClientKey)
	cases := []struct {
		name      string
		configure func(*server.Options)
		tables    func(url string) string
		secrets   []string
		connect   string
	}{
		{"user and password, TLS with a client certificate, a URL list",
			func(o *server.Options) { tlsConf(o); o.Username, o.Password = "pacer", password },
			func(url string) string {
				return fmt.Sprintf("[nats]\nurls = [%q, %q]\nuser = \"pacer\"\npassword = %q\n%s", dead, url, password, tlsTable)
			},
			[]string{password}, "user pacer (tls): nats-server 2.15.2"},
		{"token",
			func(o *server.Options) { o.Authorization = token },
			func(url string) string { return fmt.Sprintf("[nats]\nurl = %q\ntoken = %q\n", url, token) },
			[]string{token}, " token: nats-server 2.15.2"},
		{"nkey seed file",
			nkeyConf,
			func(url string) string { return fmt.Sprintf("[nats]\nurl = %q\nnkey = %q\n", url, seedFile) },
			[]string{seed}, "nkey " + seedFile},
		{"creds file of an account, TLS",
			func(o *server.Options) { tlsNoCert(o); accConf(o) },
			func(url string) string {
				return fmt.Sprintf("[nats]\nurl = %q\ncreds = %q\n[nats.tls]\nca = %q\n", url, credsFile, files.CA)
			},
			[]string{credsSeed}, "creds " + credsFile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := testenv.NATSEmbeddedWith(t, tc.configure)
			stream := strings.ToUpper(testenv.UniqueName(t))
			drainAll(t, connRun{
				brokers: tc.tables(s.URL()),
				source:  fmt.Sprintf("kind = \"jetstream\"\nstream = %q\nsubjects = [%q]", stream, strings.ToLower(stream)+".>"),
				produce: []string{"publish", "--jetstream", "--subject", strings.ToLower(stream) + ".job"},
				n:       200,
				secrets: tc.secrets,
				connect: []string{tc.connect, "JetStream on"},
			}, nil)
		})
	}
}

// A Redis Cluster of three primaries that the test creates: pacer run
// drains an Asynq queue on it, and two processes share a [fleet.NAME]
// limit held in the cluster.
func TestRedisClusterSharedFleet(t *testing.T) {
	t.Parallel()
	nodes := testenv.RedisCluster(t, 3)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, strconv.Quote(n.Addr()))
	}
	queue, fleet := testenv.UniqueName(t), testenv.UniqueName(t)
	const rate, n = 100.0, 800 // 8 s of work: a backlog through the window, however late the second process starts
	c := connRun{
		brokers: fmt.Sprintf("[redis]\ncluster_addrs = [%s]\n", strings.Join(addrs, ", ")),
		fleet:   fmt.Sprintf("[fleet.%s]\nrate = %g\nexpected_workers = 2\nlease_time = \"200ms\"\n", fleet, rate),
		worker:  fmt.Sprintf("fleet = %q", fleet),
		rate:    rate, // alone, each process would take the fleet's whole rate
		source:  fmt.Sprintf("kind = \"asynq\"\nqueue = %q", queue),
		produce: []string{"enqueue", "--queue", queue},
		n:       n,
		connect: []string{"a cluster of 3 primaries, 3 nodes, TLS off"},
	}
	c.procs = 2
	var window []arrival
	var from time.Time
	const span = 3 * time.Second
	ps, _ := drainAll(t, c, func(ps []*proc, got *arrivals) {
		testenv.WaitFor(t, 20*time.Second, "jobs from both processes", func() bool {
			seen := map[string]bool{}
			for _, a := range got.snapshot() {
				seen[a.proc] = true
			}
			return len(seen) == 2
		})
		from = time.Now().Add(500 * time.Millisecond)
		time.Sleep(time.Until(from.Add(span + 200*time.Millisecond)))
		for _, a := range got.snapshot() {
			if !a.at.Before(from) && a.at.Before(from.Add(span)) {
				window = append(window, a)
			}
		}
		for i, p := range ps {
			st := p.status()
			if len(st.Fleets) != 1 || st.Fleets[0].Mode != "redis" || st.Fleets[0].Processes != 2 {
				t.Errorf("process %d: /status fleets %+v, want one in mode redis with 2 processes", i+1, st.Fleets)
			}
		}
	})
	per := map[string]int{}
	for _, a := range window {
		per[a.proc]++
	}
	within(t, fmt.Sprintf("jobs in %v from two processes sharing a fleet limit of %g/s in the cluster (%g/s without it)", span, rate, 2*rate),
		len(window), rate*span.Seconds(), 0.1)
	for _, p := range []string{"1", "2"} {
		if per[p] < len(window)/4 {
			t.Errorf("process %s sent %d of the %d jobs in the window, want ≥ 25 %%", p, per[p], len(window))
		}
	}
	_ = ps
}

// A primary that a redis-sentinel monitors: pacer run finds it through
// the sentinel.
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	primary := testenv.RedisProcess(t)
	sent := testenv.RedisSentinel(t, "pacerprimary", primary.Addr())
	drainAll(t, connRun{
		brokers: fmt.Sprintf("[redis.sentinel]\nmaster = \"pacerprimary\"\naddrs = [%q]\n", sent.Addr()),
		source:  asynqSource(t),
		produce: []string{"enqueue", "--queue", queueOf(t)},
		n:       200,
		connect: []string{"redis: ok: redis sentinel master \"pacerprimary\" via " + sent.Addr(), "role master"},
	}, nil)
}

// A NATS cluster of three servers with a stream replicated on all three:
// the server pacer run is connected to is killed (SIGKILL) mid-run, and
// every job still reaches the sink.
func TestNATSClusterNodeKilled(t *testing.T) {
	t.Parallel()
	start := time.Now()
	procs := testenv.NATSCluster(t, 3)
	t.Logf("the NATS cluster was ready in %v", time.Since(start).Round(time.Millisecond))
	var urls, quoted []string
	for _, p := range procs {
		urls = append(urls, "nats://"+p.Addr())
		quoted = append(quoted, strconv.Quote("nats://"+p.Addr()))
	}
	stream := strings.ToUpper(testenv.UniqueName(t))
	subj := strings.ToLower(stream)
	// The stream is made here with three replicas (pacer would make one
	// with one replica, which a killed server takes with it).
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// On a busy machine the placement can still fail for a moment ("no
	// suitable peers for placement"): try again.
	var cerr error
	if !testenv.Eventually(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, cerr = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subj + ".>"}, Replicas: 3})
		return cerr == nil
	}) {
		t.Fatalf("creating stream %s with three replicas: %v", stream, cerr)
	}
	t.Logf("stream %s with three replicas made %v after the start", stream, time.Since(start).Round(time.Millisecond))
	nc.Close()

	const n = 400
	killed, killedAt := "", time.Time{}
	ps, got := drainAll(t, connRun{
		brokers: fmt.Sprintf("[nats]\nurls = [%s]\n", strings.Join(quoted, ", ")),
		rate:    100,
		source:  fmt.Sprintf("kind = \"jetstream\"\nstream = %q\nack_wait = \"2s\"", stream),
		produce: []string{"publish", "--jetstream", "--subject", subj + ".job"},
		n:       n,
		connect: []string{"cluster \"pacer\" of 3 servers", "JetStream on"},
	}, func(_ []*proc, got *arrivals) {
		testenv.WaitFor(t, 20*time.Second, "a quarter of the jobs", func() bool { return got.distinct() >= n/4 })
		// Kill one server, the one pacer run is on (not then the one it
		// moves to).
		for _, s := range procs {
			if slices.Contains(s.NATSClients(), "pacer") {
				killed = s.Name
				s.Kill()
				killedAt = time.Now()
				break
			}
		}
		if killed == "" {
			t.Fatalf("no server of the cluster has a client named pacer")
		}
		t.Logf("killed %s (SIGKILL) with %d of %d jobs at the sink", killed, got.distinct(), n)
	})
	if last := got.snapshot(); len(last) > 0 {
		t.Logf("the last job arrived %v after the kill", last[len(last)-1].at.Sub(killedAt).Round(10*time.Millisecond))
	}
	for _, want := range []string{"nats disconnected; reconnecting", "nats reconnected"} {
		if !strings.Contains(ps[0].log.String(), want) {
			t.Errorf("pacer run's log has no %q after its server was killed", want)
		}
	}
}

// Wrong passwords, tokens and seeds, and URLs that hold them: pacer check
// --connect and pacer run fail, say why, and show none of them.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	files := testenv.NewTLSFiles(t)
	const redisPW, wrongPW = "Redis-right-pw-a81f", "Redis-wrong-pw-3c2e"
	r := testenv.RedisTLS(t, files, "--user", "default", "off", "--user", "pacer", "on", ">"+redisPW, "~*", "&*", "+@all")
	const token, wrongToken = "nats-right-token-9d0a", "nats-wrong-token-64be"
	ns := testenv.NATSEmbeddedWith(t, func(o *server.Options) { o.Authorization = token })
	const natsPW = "nats-url-pw-e51b"
	us := testenv.NATSEmbeddedWith(t, func(o *server.Options) { o.Username, o.Password = "pacer", "other" })
	nkeyConf, seedFile, seed := testenv.NATSNKey(t)
	_ = nkeyConf                    // the seed's user is not let in by ks
	ks, _, _ := testenv.NATSNKey(t) // a server that lets in another nkey
	kserver := testenv.NATSEmbeddedWith(t, ks)
	asynqSrc := "[[worker]]\nname = \"w\"\nrate = 1\n[worker.source]\nkind = \"asynq\"\n[worker.sink]\nkind = \"log\"\n"
	jsSrc := "[[worker]]\nname = \"w\"\nrate = 1\n[worker.source]\nkind = \"jetstream\"\nstream = \"S\"\n[worker.sink]\nkind = \"log\"\n"
	cases := []struct {
		name, config, why string
		secrets           []string
		loadError         bool // check fails at load, before connecting
	}{
		{"a wrong Redis password in the url",
			fmt.Sprintf("[redis]\nurl = \"rediss://pacer:%s@%s\"\n[redis.tls]\nca = %q\n", wrongPW, r.Addr(), files.CA) + asynqSrc,
			"WRONGPASS", []string{wrongPW}, false},
		{"a wrong Redis password key",
			fmt.Sprintf("[redis]\naddr = %q\nusername = \"pacer\"\npassword = %q\n[redis.tls]\nca = %q\n", r.Addr(), wrongPW, files.CA) + asynqSrc,
			"WRONGPASS", []string{wrongPW}, false},
		{"a Redis url that does not parse",
			fmt.Sprintf("[redis]\nurl = \"rediss://pacer:%s@%s:port\"\n", redisPW, "127.0.0.1") + asynqSrc,
			"redis.url: not a Redis URL", []string{redisPW}, true},
		{"a wrong NATS token",
			fmt.Sprintf("[nats]\nurl = %q\ntoken = %q\n", ns.URL(), wrongToken) + jsSrc,
			"uthorization", []string{wrongToken}, false},
		{"a NATS token in the url",
			fmt.Sprintf("[nats]\nurl = %q\n", strings.Replace(ns.URL(), "://", "://"+wrongToken+"@", 1)) + jsSrc,
			"uthorization", []string{wrongToken}, false},
		{"a wrong NATS password in the url",
			fmt.Sprintf("[nats]\nurl = %q\n", strings.Replace(us.URL(), "://", "://pacer:"+natsPW+"@", 1)) + jsSrc,
			"uthorization", []string{natsPW}, false},
		{"an nkey the server does not know",
			fmt.Sprintf("[nats]\nurl = %q\nnkey = %q\n", kserver.URL(), seedFile) + jsSrc,
			"uthorization", []string{seed}, false},
		{"a variable that is not set",
			"[redis]\naddr = \"127.0.0.1:1\"\npassword = \"${PACER_TEST_UNSET_VARIABLE}\"\n" + asynqSrc,
			"redis.password: ${PACER_TEST_UNSET_VARIABLE}: the environment variable PACER_TEST_UNSET_VARIABLE is not set", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := writeCfg(t, dir, "admin = \"\"\n"+tc.config)
			out, code := pacer(t, "check", "--connect", "--config", cfg)
			if code == 0 || !strings.Contains(out, tc.why) {
				t.Errorf("pacer check --connect: exit %d, output\n%s\nwant a failure that says %q", code, out, tc.why)
			}
			noSecrets(t, "pacer check --connect", out, tc.secrets)
			if tc.loadError {
				return
			}
			cmd := exec.Command(bin, "run", "--config", cfg, "--log-level", "debug")
			cmd.Dir = dir
			outb, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(outb), tc.why) {
				t.Errorf("pacer run: %v, output\n%s\nwant a failure that says %q", err, outb, tc.why)
			}
			noSecrets(t, "pacer run", string(outb), tc.secrets)
			t.Logf("pacer check --connect:\n%spacer run:\n%s", out, tailLines(string(outb), 3))
		})
	}
}
