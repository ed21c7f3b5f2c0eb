package testenv

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a server program that a test started and that t's cleanup
// kills: a redis-server with TLS or in a cluster, a redis-sentinel, a
// nats-server of a cluster.
type Process struct {
	Name    string // what it is, for messages
	Port    int    // the port its clients dial
	monitor int    // HTTP monitoring port of a nats-server; 0 for others
	cmd     *exec.Cmd
	log     *SyncBuffer
	done    chan struct{}
}

// Addr returns 127.0.0.1:Port.
func (p *Process) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// Log returns what the process wrote so far.
func (p *Process) Log() string { return p.log.String() }

// Kill ends the process with SIGKILL and returns once it has exited.
// Killing a dead process does nothing.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// StartProcess starts bin with args and returns once its output holds
// ready, or fails t (with the output) if it exits or does not print ready
// within 15 seconds. t's cleanup kills it. When bin is not on PATH it
// skips t, or fails it when CI is "true".
func StartProcess(t testing.TB, name string, port int, ready, bin string, args ...string) *Process {
	t.Helper()
	p, err := startProcess(t, name, port, ready, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startOnFreePort runs start with a new free port until it starts (at
// most three times: another program may take a free port before the
// server binds it), or fails t with the last error.
func startOnFreePort(t testing.TB, start func(port int) (*Process, error)) *Process {
	t.Helper()
	var last error
	for range 3 {
		p, err := start(FreePort(t))
		if err == nil {
			return p
		}
		last = err
	}
	t.Fatal(last)
	return nil
}

func startProcess(t testing.TB, name string, port int, ready, bin string, args ...string) (*Process, error) {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		noProgram(t, bin)
	}
	p := &Process{Name: name, Port: port, log: &SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Kill)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.log.String(), ready) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("testenv: %s exited at start:\n%s", name, lastLines(p.log.String(), 10))
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("testenv: %s did not print %q in 15s:\n%s", name, ready, lastLines(p.log.String(), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, nil
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out by FreePort; guarded by portsMu
)

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on now
// and that FreePort has not returned before in this process (a test that
// asks for several ports before starting its servers gets distinct ones).
// It is safe for concurrent use.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		p, err := freePort()
		if err != nil {
			t.Fatalf("testenv: finding a free port: %v", err)
		}
		if !ports[p] {
			ports[p] = true
			return p
		}
	}
	t.Fatalf("testenv: no new free port in 100 tries")
	return 0
}

// redisArgs are the arguments of every redis-server a test starts here:
// no persistence, logs to stdout, data in dir.
func redisArgs(dir string) []string {
	return []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", "", "--daemonize", "no"}
}

// RedisTLS starts a redis-server that takes only TLS connections, with
// the certificates of files (clients need not present one), and the
// extra arguments (such as an ACL user: "--user", "pacer", "on", ">pw",
// "~*", "&*", "+@all").
func RedisTLS(t testing.TB, files TLSFiles, extra ...string) *Process {
	t.Helper()
	dir := t.TempDir()
	return startOnFreePort(t, func(port int) (*Process, error) {
		args := append(redisArgs(dir), "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", files.ServerCert, "--tls-key-file", files.ServerKey, "--tls-ca-cert-file", files.CA,
			"--tls-auth-clients", "optional")
		return startProcess(t, "redis-server with TLS", port, "Ready to accept connections", "redis-server", append(args, extra...)...)
	})
}

// RedisCluster starts n redis-servers with cluster mode on and makes them
// one Redis Cluster with redis-cli --cluster create (no replicas), and
// returns once every node says cluster_state:ok.
func RedisCluster(t testing.TB, n int) []*Process {
	t.Helper()
	var nodes []*Process
	var addrs []string
	for i := range n {
		p := startOnFreePort(t, func(port int) (*Process, error) {
			args := append(redisArgs(t.TempDir()), "--port", strconv.Itoa(port), "--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(FreePort(t)), "--cluster-node-timeout", "2000")
			return startProcess(t, fmt.Sprintf("redis cluster node %d", i+1), port, "Ready to accept connections", "redis-server", args...)
		})
		nodes = append(nodes, p)
		addrs = append(addrs, p.Addr())
	}
	cmd := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, p := range nodes {
		WaitFor(t, 20*time.Second, p.Name+" cluster_state:ok", func() bool {
			out, err := exec.Command("redis-cli", "-p", strconv.Itoa(p.Port), "cluster", "info").Output()
			return err == nil && strings.Contains(string(out), "cluster_state:ok")
		})
	}
	return nodes
}

// RedisSentinel starts a redis-sentinel that monitors the primary at
// primaryAddr under the name master (quorum 1), and returns once it
// monitors it.
func RedisSentinel(t testing.TB, master, primaryAddr string) *Process {
	t.Helper()
	host, pport, err := net.SplitHostPort(primaryAddr)
	if err != nil {
		t.Fatal(err)
	}
	return startOnFreePort(t, func(port int) (*Process, error) {
		dir := t.TempDir()
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
			port, dir, master, host, pport, master)
		path := dir + "/sentinel.conf"
		if err := writeFile(path, conf); err != nil {
			return nil, err
		}
		return startProcess(t, "redis-sentinel", port, "+monitor master "+master, "redis-sentinel", path, "--logfile", "", "--daemonize", "no")
	})
}
