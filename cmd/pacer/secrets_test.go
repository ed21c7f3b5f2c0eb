package main_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jobpacer/pacer/internal/testenv"
)

// secretForm is one way a config (or a flag) can hold a secret: the
// broker tables, the environment the commands get, and the secrets that
// must show nowhere.
type secretForm struct {
	name    string
	brokers string   // [redis] or [nats] tables
	env     []string // added to every command's environment
	secrets []string
	// runs: the config is right and its servers let pacer in, so pacer
	// run serves a job; otherwise check --connect and run fail.
	runs bool
	// produce puts one job in: "publish" or "enqueue".
	produce string
	// flag is the --nats or --redis value that holds the secret, for
	// publish or enqueue without a config ("" for none).
	flag string
}

// redisWithPasswords starts a redis-server whose default user has the
// password defaultPW and that has an ACL user pacer with userPW.
func redisWithPasswords(t *testing.T, defaultPW, userPW string) string {
	t.Helper()
	port := testenv.FreePort(t)
	p := testenv.StartProcess(t, "redis-server with passwords", port, "Ready to accept connections", "redis-server",
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--logfile", "", "--daemonize", "no", "--requirepass", defaultPW,
		"--user", "pacer", "on", ">"+userPW, "~*", "&*", "+@all")
	return p.Addr()
}

// Every form a secret can take in [redis] and [nats] — a NATS URL without
// a scheme (user:password@host:port, token@host:port), a nats:// URL with
// a token, an nkey seed itself in nats.nkey through ${NATS_NKEY}, a
// redis:// URL with a password in url or in addr, a password holding a
// "/" (which url.Parse quotes a part of), wrong passwords that make
// check --connect and run fail — goes through pacer check, check
// --connect, publish or enqueue (with the config and with the flag), pacer
// run's log at debug level or its fatal error, /status, /samples,
// /metrics, the dashboard page, and the environment of the exec sink's
// command (pacer's own holds REDIS_PASSWORD and NATS_TOKEN), and none of
// them shows a secret, nor the first or second part of one split at "/".
// The admin server does not answer a Host that is not its own.
func TestEverySecretFormHidden(t *testing.T) {
	t.Parallel()
	const (
		natsPW    = "natsPw-4c1d9e"
		natsTok   = "natsTok-8b2f70"
		wrongPW   = "wrongPw-a07c3b"
		wrongTok  = "wrongTok-19e4d2"
		redisPW   = "redisPw-e3a5c1"
		redisUser = "redisUserPw-91bd7a"
		slashHead = "slashHead-6e2a"
		slashTail = "slashTail-0f4b"
		envPW     = "envRedisPw-77aa12" // in pacer's environment, never the job's
		envTok    = "envNatsTok-5d3e90"
	)
	slash := slashHead + "/" + slashTail
	hostOf := func(s *testenv.NATSServer) string { return strings.TrimPrefix(s.URL(), "nats://") }
	users := testenv.NATSEmbeddedWith(t, func(o *server.Options) { o.Username, o.Password = "pacer", natsPW })
	tokens := testenv.NATSEmbeddedWith(t, func(o *server.Options) { o.Authorization = natsTok })
	nkeyConf, _, seed := testenv.NATSNKey(t)
	nkeys := testenv.NATSEmbeddedWith(t, nkeyConf)
	redis := redisWithPasswords(t, redisPW, redisUser)
	natsSrc := func(t *testing.T) string {
		return fmt.Sprintf("kind = \"nats\"\nsubject = %q", testenv.UniqueName(t))
	}
	asynqSrc := func(t *testing.T) string { return fmt.Sprintf("kind = \"asynq\"\nqueue = %q", testenv.UniqueName(t)) }
	nat := func(url string) string { return fmt.Sprintf("[nats]\nurl = %q\n", url) }
	red := func(key, v string) string { return fmt.Sprintf("[redis]\n%s = %q\n", key, v) }
	forms := []secretForm{
		{name: "a NATS url without a scheme, with user and password", brokers: nat("pacer:" + natsPW + "@" + hostOf(users)),
			secrets: []string{natsPW}, runs: true, produce: "publish", flag: "pacer:" + natsPW + "@" + hostOf(users)},
		{name: "a NATS url without a scheme, with a token", brokers: nat(natsTok + "@" + hostOf(tokens)),
			secrets: []string{natsTok}, runs: true, produce: "publish", flag: natsTok + "@" + hostOf(tokens)},
		{name: "a nats:// url with a token", brokers: nat("nats://" + natsTok + "@" + hostOf(tokens)),
			secrets: []string{natsTok}, runs: true, produce: "publish", flag: "nats://" + natsTok + "@" + hostOf(tokens)},
		{name: "nats.urls with a token", brokers: fmt.Sprintf("[nats]\nurls = [%q]\n", natsTok+"@"+hostOf(tokens)),
			secrets: []string{natsTok}, runs: true, produce: "publish"},
		{name: "the nkey seed itself in nats.nkey, through ${NATS_NKEY}",
			brokers: fmt.Sprintf("[nats]\nurl = %q\nnkey = \"${NATS_NKEY}\"\n", nkeys.URL()),
			env:     []string{"NATS_NKEY=" + seed}, secrets: []string{seed}, runs: true, produce: "publish"},
		{name: "a redis:// url with the default user's password", brokers: red("url", "redis://:"+redisPW+"@"+redis),
			secrets: []string{redisPW}, runs: true, produce: "enqueue", flag: "redis://:" + redisPW + "@" + redis},
		{name: "a redis:// url with a user and password", brokers: red("url", "redis://pacer:"+redisUser+"@"+redis),
			secrets: []string{redisUser}, runs: true, produce: "enqueue", flag: "redis://pacer:" + redisUser + "@" + redis},
		{name: "redis.addr holding a url with a password", brokers: red("addr", "redis://:"+redisPW+"@"+redis),
			secrets: []string{redisPW}, produce: "enqueue"},
		{name: "redis.addr holding a url with a user and password", brokers: red("addr", "redis://pacer:"+redisUser+"@"+redis),
			secrets: []string{redisUser}, produce: "enqueue"},
		{name: "a NATS password with a slash", brokers: nat("nats://pacer:" + slash + "@" + hostOf(users)),
			secrets: []string{slashHead, slashTail}, produce: "publish", flag: "nats://pacer:" + slash + "@" + hostOf(users)},
		{name: "a NATS password with a slash, without a scheme", brokers: nat("pacer:" + slash + "@" + hostOf(users)),
			secrets: []string{slashHead, slashTail}, produce: "publish", flag: "pacer:" + slash + "@" + hostOf(users)},
		{name: "a Redis password with a slash", brokers: red("url", "redis://:"+slash+"@"+redis),
			secrets: []string{slashHead, slashTail}, produce: "enqueue", flag: "redis://:" + slash + "@" + redis},
		{name: "a wrong password in a NATS url without a scheme", brokers: nat("pacer:" + wrongPW + "@" + hostOf(users)),
			secrets: []string{wrongPW}, produce: "publish", flag: "pacer:" + wrongPW + "@" + hostOf(users)},
		{name: "a wrong token in a NATS url without a scheme", brokers: nat(wrongTok + "@" + hostOf(tokens)),
			secrets: []string{wrongTok}, produce: "publish", flag: wrongTok + "@" + hostOf(tokens)},
		{name: "a wrong token in a nats:// url", brokers: nat("nats://" + wrongTok + "@" + hostOf(tokens)),
			secrets: []string{wrongTok}, produce: "publish", flag: "nats://" + wrongTok + "@" + hostOf(tokens)},
	}
	for _, fm := range forms {
		t.Run(fm.name, func(t *testing.T) {
			t.Parallel()
			secrets := append([]string{envPW, envTok}, fm.secrets...)
			env := append([]string{"REDIS_PASSWORD=" + envPW, "NATS_TOKEN=" + envTok}, fm.env...)
			dir := t.TempDir()
			jobEnv := filepath.Join(dir, "job.env")
			src := natsSrc(t)
			if fm.produce == "enqueue" {
				src = asynqSrc(t)
			}
			cfg := fmt.Sprintf(`
status_every = "1s"
log_level = "debug"
%s
[[worker]]
name = "secrets"
rate = 50
[worker.source]
%s
[worker.sink]
kind = "exec"
command = ["sh", "-c", "env > %s.tmp && mv %s.tmp %s"]
`, fm.brokers, src, jobEnv, jobEnv, jobEnv)
			path := writeCfg(t, dir, cfg)
			shown := func(where, out string) { t.Helper(); noSecrets(t, where, out, secrets) }

			out, code := pacerIn(t, dir, env, "check", "--config", path)
			shown("pacer check", out)
			if fm.runs && code != 0 {
				t.Errorf("pacer check: exit %d, want 0:\n%s", code, out)
			}
			out, code = pacerIn(t, dir, env, "check", "--connect", "--config", path)
			shown("pacer check --connect", out)
			if fm.runs != (code == 0) {
				t.Errorf("pacer check --connect: exit %d, want a failure only if the form is wrong (runs %v):\n%s", code, fm.runs, out)
			}
			if fm.flag != "" {
				flag, where := "--nats", []string{"--subject", testenv.UniqueName(t)}
				if fm.produce == "enqueue" {
					flag, where = "--redis", []string{"--queue", testenv.UniqueName(t)}
				}
				out, _ = pacerIn(t, dir, env, append([]string{fm.produce, flag, fm.flag, "-n", "1", "-q"}, where...)...)
				shown("pacer "+fm.produce+" "+flag, out)
			}
			if !fm.runs {
				out, _ = pacerIn(t, dir, env, fm.produce, "--config", path, "-n", "1", "-q")
				shown("pacer "+fm.produce+" --config", out)
				out, code = pacerIn(t, dir, env, "run", "--config", path, "--admin", freeAddr(t))
				shown("pacer run's fatal error", out)
				if code == 0 {
					t.Errorf("pacer run: exit 0, want a failure:\n%s", out)
				}
				return
			}
			p := startRunEnv(t, freeAddr(t), env, dir, cfg)
			out, code = pacerIn(t, dir, env, fm.produce, "--config", path, "-n", "1", "-q")
			shown("pacer "+fm.produce, out)
			if code != 0 {
				t.Fatalf("pacer %s: exit %d:\n%s", fm.produce, code, out)
			}
			testenv.WaitFor(t, 30*time.Second, "the job's environment from the exec sink", func() bool {
				_, err := os.Stat(jobEnv)
				return err == nil
			})
			b, err := os.ReadFile(jobEnv)
			if err != nil {
				t.Fatal(err)
			}
			shown("the exec sink's job environment", string(b))
			for _, want := range []string{"PATH=", "PACER_JOB_ID=", "PACER_WORKER=secrets"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("the job's environment has no %s:\n%s", want, b)
				}
			}
			// /samples has the broker list once a source has asked for it.
			testenv.WaitFor(t, 10*time.Second, "the broker in /samples", func() bool {
				return strings.Contains(get(t, p.admin, "/samples"), `"brokers":[{`)
			})
			for _, page := range []string{"/status", "/samples", "/metrics", "/"} {
				shown(page, get(t, p.admin, page))
			}
			// A page that a DNS-rebinding attack points at the admin address
			// sends its own name as Host.
			req, _ := http.NewRequest("GET", "http://"+p.admin+"/samples", nil)
			req.Host = "rebound.example.com:" + p.admin[strings.LastIndex(p.admin, ":")+1:]
			if resp, err := http.DefaultClient.Do(req); err != nil {
				t.Error(err)
			} else if resp.Body.Close(); resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("GET /samples with Host %s: %s, want 421", req.Host, resp.Status)
			}
			p.stop(15 * time.Second)
			shown("pacer run's log", p.log.String())
		})
	}
}

// get returns the body of the admin server's page at path.
func get(t *testing.T, admin, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", path, resp.Status, err)
	}
	return string(b)
}
