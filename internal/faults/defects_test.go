package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/internal/admin"
	"github.com/jobpacer/pacer/internal/testenv"
)

// A command still running when drain_timeout ends is killed with its
// process group, its job goes back to the broker as not done (the next
// run finishes it), and pacer exits within drain_timeout and a margin,
// whatever the source.
func TestNoOrphanAfterShutdown(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"asynq", "jetstream"} {
		t.Run(src, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// The first run's command starts a child and sleeps; once the
			// file "second" exists, the command finishes at once.
			script := filepath.Join(dir, "job.sh")
			if err := os.WriteFile(script, []byte(`#!/bin/sh
echo $$ > "$D/pgid"
if [ ! -e "$D/second" ]; then sleep 60 & sleep 60; fi
cat > "$D/done"
`), 0o700); err != nil {
				t.Fatal(err)
			}
			var source string
			var send func()
			switch src {
			case "asynq":
				redis := testenv.RedisProcess(t)
				queue := testenv.UniqueName(t)
				source = fmt.Sprintf("[redis]\naddr = %q\n[[worker]]\nname = \"w\"\nrate = 10\n[worker.source]\nkind = \"asynq\"\nqueue = %q\n", redis.Addr(), queue)
				send = func() { enqueue(t, redis.Addr(), queue, "job", []string{"the-job"}) }
			case "jetstream":
				ns := testenv.NATSEmbedded(t)
				stream, subject := streamName(t)
				source = fmt.Sprintf("[nats]\nurl = %q\n[[worker]]\nname = \"w\"\nrate = 10\n[worker.source]\nkind = \"jetstream\"\nstream = %q\nack_wait = \"30s\"\n", ns.URL(), stream)
				send = func() { publish(t, ns.URL(), stream, subject, []string{"the-job"}) }
			}
			cfg := writeConfig(t, "admin = \"\"\nstatus_every = \"0s\"\ndrain_timeout = %q\n%s[worker.sink]\nkind = \"exec\"\ncommand = [%q]\nenv = [\"D=%s\"]\ntimeout = \"5m\"\n",
				drain.String(), source, script, dir)
			send()
			p := startPacer(t, nil, cfg, "run")
			var pgid int
			testenv.WaitFor(t, 30*time.Second, "the command to start", func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "pgid"))
				pgid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				return err == nil && pgid > 0
			})
			took := p.stop()
			t.Logf("faults: orphan check (%s → exec): exit %v after SIGTERM with drain_timeout %v", src, took.Round(10*time.Millisecond), drain)
			testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("process group %d (the command and its child) to be gone", pgid), func() bool { return groupGone(pgid) })
			if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
				t.Fatal("the first run's command finished; want it killed")
			}
			// The job was handed back: the next run does it.
			if err := os.WriteFile(filepath.Join(dir, "second"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			p = startPacer(t, nil, cfg, "run")
			testenv.WaitFor(t, 60*time.Second, "the next run to do the job handed back", func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "done"))
				return err == nil && string(b) == "the-job"
			})
			if os.Getenv("FAULTS_DEBUG") != "" {
				t.Logf("second run:\n%s", p.out.String())
			}
			p.signal(syscall.SIGTERM)
			p.wait(exitTime)
		})
	}
}

// Idle connections to the admin address are capped: the ones beyond
// admin.MaxConns are closed at once, the worker's file descriptors stay
// bounded, and the admin server answers again once they go.
func TestIdleAdminConnectionsCapped(t *testing.T) {
	t.Parallel()
	redis := testenv.RedisProcess(t)
	c := newCounter(t, nil)
	addr := freeAddr(t)
	p := startPacer(t, nil, asynqConfig(t, addr, redis.Addr(), testenv.UniqueName(t), c.url()), "run")
	testenv.WaitFor(t, 30*time.Second, "/readyz to answer 200", func() bool { code, _ := httpGet("http://" + addr + "/readyz"); return code == 200 })
	fdsBefore := openFDs(t, p.cmd.Process.Pid)

	const n = 4 * admin.MaxConns
	var closed atomic.Int64
	var wg sync.WaitGroup
	var conns []net.Conn
	for range n {
		cn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, cn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.Copy(io.Discard, cn); err == nil || !errors.Is(err, net.ErrClosed) {
				closed.Add(1) // the server closed it (EOF or reset), not we
			}
		}()
	}
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("the server to close the %d connections beyond its cap", n-admin.MaxConns), func() bool {
		return closed.Load() >= n-admin.MaxConns
	})
	fds := openFDs(t, p.cmd.Process.Pid)
	t.Logf("faults: idle admin connections: %d opened, %d closed by the server at once, open fds %d → %d", n, closed.Load(), fdsBefore, fds)
	if fds > fdsBefore+admin.MaxConns+8 {
		t.Errorf("pacer has %d open file descriptors with %d idle admin connections, %d before: want at most %d more (the cap)", fds, n, fdsBefore, admin.MaxConns)
	}
	for _, cn := range conns {
		cn.Close()
	}
	wg.Wait()
	testenv.WaitFor(t, 30*time.Second, "/healthz to answer again", func() bool { code, _ := httpGet("http://" + addr + "/healthz"); return code == 200 })
	p.signal(syscall.SIGTERM)
	p.wait(exitTime)
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("cannot count open file descriptors: %v", err)
	}
	return len(es)
}

// A worker whose JetStream consumer is deleted goes down, is restarted
// (its consumer recreated) and takes jobs again; /status counts the
// restart.
func TestDeletedConsumerRecovers(t *testing.T) {
	t.Parallel()
	ns := testenv.NATSEmbedded(t)
	c := newCounter(t, nil)
	stream, subject := streamName(t)
	first := jobs(t, 50)
	publish(t, ns.URL(), stream, subject, first)
	addr := freeAddr(t)
	cfg := jetStreamConfig(t, addr, ns.URL(), stream, c.url())
	p := startPacer(t, nil, cfg, "run")
	c.waitAll(allTime, first)

	js := testenv.JetStream(t, ns.URL())
	ctx := context.Background()
	before, err := js.Consumer(ctx, stream, "pacer-w")
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, stream, "pacer-w"); err != nil {
		t.Fatal(err)
	}
	p.waitLog(30*time.Second, "worker down")
	p.waitLog(30*time.Second, "worker recovered")
	second := jobs(t, 50)
	publish(t, ns.URL(), stream, subject, second)
	all := append(first, second...)
	c.waitAll(allTime, all)
	c.report("JetStream consumer deleted, worker restarted", all)

	// The consumer was made again as it was, but starting right after the
	// 50 jobs done (stream sequences 1-50), and none of them ran again: the
	// source remembers every job it settled, so the bound on repeats is 0
	// for one process (docs/reliability.md).
	after, err := js.Consumer(ctx, stream, "pacer-w")
	if err != nil {
		t.Fatal(err)
	}
	bc, ac := before.CachedInfo().Config, after.CachedInfo().Config
	t.Logf("faults: consumer deleted: recreated with deliver policy %v, start sequence %d", ac.DeliverPolicy, ac.OptStartSeq)
	if ac.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || ac.OptStartSeq != uint64(len(first))+1 {
		t.Errorf("recreated consumer: deliver policy %v, start %d: want by start sequence, %d", ac.DeliverPolicy, ac.OptStartSeq, len(first)+1)
	}
	ac.DeliverPolicy, ac.OptStartSeq = bc.DeliverPolicy, bc.OptStartSeq
	if !reflect.DeepEqual(ac, bc) {
		t.Errorf("recreated consumer's config\n%+v\nwant the old one but for where it starts\n%+v", ac, bc)
	}
	if _, deliveries := c.received(); deliveries != len(all) {
		t.Errorf("%d deliveries of %d jobs: want each once, none of the jobs done before the consumer was deleted run again", deliveries, len(all))
	}
	st, ok := fetchStatus(addr)
	if !ok || len(st.Workers) != 1 || !st.Workers[0].Up || st.Workers[0].Restarts < 1 || !st.Ready {
		t.Errorf("/status after recovery = %+v, want the worker up, ready, with a restart counted", st)
	}
	p.stop()

	// A new pacer run takes the recreated consumer as it is (its start
	// cannot be updated) and goes on.
	p = startPacer(t, nil, cfg, "run")
	third := jobs(t, 10)
	publish(t, ns.URL(), stream, subject, third)
	all = append(all, third...)
	c.waitAll(allTime, all)
	if _, deliveries := c.received(); deliveries != len(all) {
		t.Errorf("%d deliveries of %d jobs after a restart, want %d", deliveries, len(all), len(all))
	}
	p.signal(syscall.SIGTERM)
	p.wait(exitTime)
}

// The consumer deleted while jobs flow (the ack floor the server last
// showed is stale; the first attempt of one job in seven fails, so jobs
// are settled out of order: the ones after a failed job before its
// retry): the recreated consumer starts at the oldest job not settled,
// and a job settled above it is acked without running, so none runs
// twice.
func TestDeletedConsumerMidRun(t *testing.T) {
	t.Parallel()
	ns := testenv.NATSEmbedded(t)
	c := newCounter(t, func(job string, attempt int) int {
		var i int
		fmt.Sscanf(job[strings.LastIndexByte(job, '-')+1:], "%d", &i)
		if i%7 == 3 && attempt == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	stream, subject := streamName(t)
	sent := jobs(t, nJobs)
	publish(t, ns.URL(), stream, subject, sent)
	p := startPacer(t, nil, jetStreamConfig(t, "", ns.URL(), stream, c.url()), "run")
	atLeast(t, c, nJobs/3)
	js := testenv.JetStream(t, ns.URL())
	if err := js.DeleteConsumer(context.Background(), stream, "pacer-w"); err != nil {
		t.Fatal(err)
	}
	atDelete, _ := c.received()
	p.waitLog(30*time.Second, "worker recovered")
	c.waitAll(allTime, sent)
	c.report("JetStream consumer deleted mid-run, worker restarted", sent)
	after, err := js.Consumer(context.Background(), stream, "pacer-w")
	if err != nil {
		t.Fatal(err)
	}
	above := -1
	if m := regexp.MustCompile(`consumer recreated after the jobs already done.* done_above=(\d+)`).FindStringSubmatch(p.out.String()); m != nil {
		above, _ = strconv.Atoi(m[1])
	}
	t.Logf("faults: consumer deleted mid-run after %d jobs received: recreated with start sequence %d, %d jobs settled above it remembered",
		atDelete, after.CachedInfo().Config.OptStartSeq, above)
	if above <= 0 {
		t.Errorf("pacer remembered %d jobs settled above the start of the recreated consumer, want some (jobs settled out of order)", above)
	}
	if distinct, deliveries := c.received(); deliveries != distinct {
		t.Errorf("%d deliveries of %d jobs: want none done before the consumer was deleted run again", deliveries, distinct)
	}
	p.stop()
}

// A worker that cannot be restarted (its stream deleted, and another
// stream now owns its subjects, so it cannot be made again) is reported
// down by /readyz, /status, pacer status and /metrics, and pacer exits 1
// after recover_timeout.
func TestUnrecoverableWorkerExits(t *testing.T) {
	t.Parallel()
	ns := testenv.NATSEmbedded(t)
	c := newCounter(t, nil)
	stream, subject := streamName(t)
	sent := jobs(t, 20)
	publish(t, ns.URL(), stream, subject, sent)
	addr := freeAddr(t)
	cfg := jetStreamConfig(t, addr, ns.URL(), stream, c.url())
	cfg = rewrite(t, cfg, `drain_timeout`, "recover_timeout = \"5s\"\ndrain_timeout")
	p := startPacer(t, nil, cfg, "run")
	c.waitAll(allTime, sent)

	js := testenv.JetStream(t, ns.URL())
	ctx := context.Background()
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream + "_OTHER", Subjects: []string{strings.ToLower(stream) + ".>"}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "/readyz to answer 503", func() bool { code, _ := httpGet("http://" + addr + "/readyz"); return code == 503 })
	_, body := httpGet("http://" + addr + "/readyz")
	st, _ := fetchStatus(addr)
	_, metrics := httpGet("http://" + addr + "/metrics")
	var table testenv.SyncBuffer
	sp := startPacer(t, &table, "", "status", "--admin", addr)
	sp.wait(10 * time.Second)
	if !strings.Contains(body, `worker "w" down`) {
		t.Errorf("/readyz body %q, want it to name the worker down", body)
	}
	if len(st.Workers) != 1 || st.Workers[0].Up || st.Ready || st.Workers[0].Error == "" {
		t.Errorf("/status = %+v, want the worker down with its error, and not ready", st)
	}
	if !strings.Contains(metrics, `pacer_worker_up{worker="w"} 0`) || !strings.Contains(metrics, "pacer_ready 0") {
		t.Errorf("/metrics has no pacer_worker_up 0 and pacer_ready 0:\n%s", grepLines(metrics, "pacer_worker_up", "pacer_ready"))
	}
	if out := table.String(); !strings.Contains(out, "NOT READY") || !strings.Contains(out, "worker w: DOWN") {
		t.Errorf("pacer status printed\n%s\nwant NOT READY and the worker DOWN", out)
	}
	start := time.Now()
	if code := p.wait(30 * time.Second); code != 1 {
		t.Errorf("pacer exited %d, want 1 once recover_timeout passed", code)
	}
	t.Logf("faults: unrecoverable worker: exit 1 %v after /readyz said 503 (recover_timeout 5s)", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(p.out.String(), "recover_timeout") {
		t.Errorf("pacer's output does not say why it exited:\n%s", tail(p.out.String(), 5))
	}
}

func rewrite(t *testing.T, path, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// Each absurd setting is refused by pacer check with its range, at its
// line.
func TestAbsurdSettingsRefused(t *testing.T) {
	t.Parallel()
	worker := func(extra string) string {
		return fmt.Sprintf("[[worker]]\nname = \"w\"\nrate = 10\n%s\n[worker.source]\nkind = \"nats\"\nsubject = \"a\"\n[worker.sink]\nkind = \"log\"\n", extra)
	}
	var many strings.Builder
	for i := range 257 {
		fmt.Fprintf(&many, "[[worker]]\nname = \"w%d\"\nrate = 10\n[worker.source]\nkind = \"nats\"\nsubject = \"a\"\n[worker.sink]\nkind = \"log\"\n", i)
	}
	fleet := func(kv string) string {
		return "[fleet.f]\nrate = 10\n" + kv + "\n" + strings.Replace(worker(""), "rate = 10\n", "rate = 10\nfleet = \"f\"\n", 1)
	}
	tests := []struct {
		name   string
		config string // "" for /dev/zero
		want   []string
	}{
		{"257 workers (the fault run had 10,000)", many.String(), []string{"257 [[worker]] tables", "at most 256"}},
		{"max_in_flight = MaxInt64", worker("max_in_flight = 9223372036854775807"), []string{"config.toml:4:", "max_in_flight: 9223372036854775807", "want in [0, 10000]"}},
		{`period = "1ns"`, worker(`period = "1ns"`), []string{"config.toml:4:", "period: 1ns", "want ≥ 10ms"}},
		{`status_every = "1ns"`, "status_every = \"1ns\"\n" + worker(""), []string{"status_every", "1ns", "want ≥ 1s"}},
		{"burst = 1e-300", worker("burst = 1e-300"), []string{"burst", "1e-300", "want"}},
		{"fleet burst = 1e300", fleet("burst = 1e300"), []string{"config.toml:3:", "burst / rate", "1e+300", "want at most"}},
		{"fleet rate = 1e-300", strings.Replace(fleet(""), "rate = 10\n", "rate = 1e-300\n", 1), []string{"rate", "1e-300", "want"}},
		{"asynq concurrency = 1e9", strings.Replace(worker(""), "kind = \"nats\"\nsubject = \"a\"", "kind = \"asynq\"\nconcurrency = 1000000000", 1), []string{"concurrency", "1000000000", "[0, 10000]"}},
		{"a config file that never ends", "", []string{"a character device, not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := "/dev/zero"
			if tt.config != "" {
				path = writeConfig(t, "%s", tt.config)
			} else if _, err := os.Stat(path); err != nil {
				t.Skip("no /dev/zero")
			}
			var out testenv.SyncBuffer
			p := startPacer(t, &out, path, "check")
			if code := p.wait(30 * time.Second); code != 2 {
				t.Errorf("pacer check exited %d, want 2 (a bad config)", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("pacer check printed\n%s\nwant it to say %q", tail(out.String(), 5), w)
				}
			}
			got := firstLine(out.String())
			t.Logf("faults: refused: %s: %s", tt.name, got)
			if quoted, ok := reliabilityQuotes[tt.name]; ok && quoted != got {
				t.Errorf("docs/reliability.md quotes pacer check for %s as\n%s\nbut it prints\n%s", tt.name, quoted, got)
			}
		})
	}
}

// reliabilityQuotes holds what docs/reliability.md's table quotes of pacer
// check's refusals ("| refused: NAME: LINE |"), by NAME, so that a refusal
// whose text changes fails TestAbsurdSettingsRefused until the doc is
// mended.
var reliabilityQuotes = func() map[string]string {
	b, err := os.ReadFile("../../docs/reliability.md")
	if err != nil {
		panic(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		_, row, ok := strings.Cut(line, "| refused: ")
		if !ok {
			continue
		}
		row = strings.TrimSuffix(strings.TrimSpace(row), " |")
		for name := range strings.SplitSeq(row, ": ") {
			m[name] = strings.TrimPrefix(row, name+": ")
			break
		}
	}
	return m
}()

func firstLine(s string) string { l, _, _ := strings.Cut(strings.TrimSpace(s), "\n"); return l }

// A URL password and query (of the http sink's url and of the Redis url)
// never appear in pacer's output, its /status, its /metrics or the errors
// Asynq stores with a task.
func TestPasswordAbsentFromOutput(t *testing.T) {
	t.Parallel()
	const password, token, redisPassword = "S3CRETPW", "S3CRETTOKEN", "S3CRETREDIS"
	redis := testenv.RedisProcess(t)
	if _, err := redisCommand(redis.Addr(), "CONFIG", "SET", "requirepass", redisPassword); err != nil {
		t.Fatal(err)
	}
	ropt := asynq.RedisClientOpt{Addr: redis.Addr(), Password: redisPassword}
	// Every job fails once with 500 (its error names the URL), then is
	// answered 200; one job is always answered 500, so its error stays
	// stored with the task.
	c := newCounter(t, func(job string, attempt int) int {
		if attempt == 1 || strings.HasSuffix(job, "-0000") {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	queue := testenv.UniqueName(t)
	sent := jobs(t, 10)
	url := strings.Replace(c.url(), "http://", "http://user:"+password+"@", 1) + "?token=" + token
	addr := freeAddr(t)
	cfg := asynqConfig(t, addr, redis.Addr(), queue, url)
	cfg = rewrite(t, cfg, `status_every = "0s"`, `status_every = "1s"`)
	cfg = rewrite(t, cfg, fmt.Sprintf("addr = %q", redis.Addr()), fmt.Sprintf("url = %q", "redis://:"+redisPassword+"@"+redis.Addr()))
	var out testenv.SyncBuffer
	chk := startPacer(t, &out, cfg, "check")
	chk.wait(30 * time.Second)
	cl := asynq.NewClient(ropt)
	for _, j := range sent {
		if _, err := cl.Enqueue(asynq.NewTask("job", []byte(j)), asynq.Queue(queue), asynq.MaxRetry(25)); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	p := startPacer(t, &out, cfg, "run", "--log-level", "debug")
	testenv.WaitFor(t, allTime, "every job but one received", func() bool { d, _ := c.received(); return d >= len(sent)-1 })
	insp := asynq.NewInspector(ropt)
	defer insp.Close()
	var stored []string
	testenv.WaitFor(t, 30*time.Second, "the failing task's error stored", func() bool {
		ts, err := insp.ListRetryTasks(queue)
		stored = stored[:0]
		for _, ti := range ts {
			stored = append(stored, ti.LastErr)
		}
		return err == nil && len(ts) == 1 && ts[0].LastErr != ""
	})
	_, st := httpGet("http://" + addr + "/status")
	_, metrics := httpGet("http://" + addr + "/metrics")
	p.signal(syscall.SIGTERM)
	p.wait(exitTime)
	all := map[string]string{"output": out.String(), "/status": st, "/metrics": metrics, "stored task error": strings.Join(stored, "\n")}
	if !strings.Contains(all["stored task error"], "500") || !strings.Contains(all["output"], "500") {
		t.Fatalf("no failure shown (the test shows nothing): stored %q", all["stored task error"])
	}
	for where, s := range all {
		for _, secret := range []string{password, token, redisPassword} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows %q:\n%s", where, secret, grepLines(s, secret))
			}
		}
	}
	t.Logf("faults: password absent: %d bytes of output, /status, /metrics and %d stored task errors searched", len(all["output"]), len(stored))
}

// A task whose type holds a CR (or LF) cannot be sent as a header: it
// fails once, as permanent, and is archived without a retry.
func TestBadTaskTypeFailsOnce(t *testing.T) {
	t.Parallel()
	redis := testenv.RedisProcess(t)
	c := newCounter(t, nil)
	queue := testenv.UniqueName(t)
	types := []string{"job\rX-Injected: 1", "job\nX-Injected: 1"}
	cl := asynq.NewClient(asynq.RedisClientOpt{Addr: redis.Addr()})
	for _, typ := range types {
		if _, err := cl.Enqueue(asynq.NewTask(typ, []byte("bad-"+typ)), asynq.Queue(queue), asynq.MaxRetry(25)); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	good := jobs(t, 5)
	enqueue(t, redis.Addr(), queue, "job", good)
	p := startPacer(t, nil, asynqConfig(t, "", redis.Addr(), queue, c.url()), "run")
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: redis.Addr()})
	defer insp.Close()
	var archived []*asynq.TaskInfo
	testenv.WaitFor(t, 60*time.Second, "both bad tasks archived", func() bool {
		var err error
		archived, err = insp.ListArchivedTasks(queue)
		return err == nil && len(archived) == len(types)
	})
	c.waitAll(allTime, good)
	for _, ti := range archived {
		if ti.Retried != 0 || !strings.Contains(ti.LastErr, "permanent") {
			t.Errorf("task of type %q archived after %d retries with %q, want 0 retries and a permanent failure", ti.Type, ti.Retried, ti.LastErr)
		}
	}
	if n := c.totalAttempts(); n != len(good) {
		t.Errorf("the downstream saw %d requests, want %d (the good jobs only)", n, len(good))
	}
	t.Logf("faults: CR/LF in a task type: %d tasks archived after 0 retries, %d good jobs delivered", len(archived), len(good))
	p.signal(syscall.SIGTERM)
	p.wait(exitTime)
}

// redisCommand sends one command to the Redis at addr and returns its
// reply.
func redisCommand(addr string, args ...string) (string, error) {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a := make([]any, len(args))
	for i, x := range args {
		a[i] = x
	}
	return rdb.Do(ctx, a...).Text()
}
