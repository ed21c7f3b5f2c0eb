package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultRedisAddr is the standard Redis address, the one a user's own
// Redis (and its monitoring) usually listens on. Redis never uses it unless
// REDIS_ADDR names it: tests write queues and keys, and must not leave them
// in a Redis that is not theirs.
const DefaultRedisAddr = "127.0.0.1:6379"

// howToGetRedis is the hint in a skip or failure message.
const howToGetRedis = "install redis-server on PATH (apt-get install redis-server; brew install redis), " +
	"or set REDIS_ADDR=host:port to a Redis the tests may write to"

// Redis returns the address of a Redis server for t: REDIS_ADDR if it is
// set, else a redis-server of t's own started on a free port and stopped
// (its data gone) when t's cleanup runs, so that nothing a test writes is
// left in the user's Redis on DefaultRedisAddr. When none can be had it
// skips t with a message saying how to get one, or fails t when the
// environment variable CI is "true".
//
// A REDIS_ADDR server may be shared with other tests: use unique key and
// queue names, and never flush, stop or restart it (RedisProcess gives a
// server of your own for that).
func Redis(t testing.TB) string {
	t.Helper()
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		if err := PingRedis(addr, 2*time.Second); err != nil {
			noServer(t, fmt.Sprintf("REDIS_ADDR=%s does not answer PING: %v", addr, err))
		}
		return addr
	}
	return RedisProcess(t).Addr()
}

// RedisServer is a redis-server process that a test started on a free port
// of 127.0.0.1, with no automatic snapshots and no append-only file. Stop
// and Start keep the port, so clients configured with Addr reconnect to the
// same address; Stop saves the data to a file in a temporary directory and
// Start loads it again, while Kill loses what was not saved. Its methods are
// safe for concurrent use; failures fail the test that made it.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	aof  bool // append-only file, fsync'd at every write

	mu   sync.Mutex // guards cmd, done, log
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *bytes.Buffer
}

// RedisProcess starts a redis-server of t's own on a free port (with
// --save "" --appendonly no) and stops it when t's cleanup runs. Use it for
// tests that stop, kill or restart Redis. When redis-server is not on PATH
// it skips t with a message saying how to get it, or fails t when the
// environment variable CI is "true".
func RedisProcess(t testing.TB) *RedisServer {
	t.Helper()
	return redisProcess(t, false)
}

// RedisProcessAOF is RedisProcess with an append-only file fsync'd at
// every write (--appendonly yes --appendfsync always): Kill then Start
// loses nothing that a client was told was written, as on a crash of a
// Redis configured for durability.
func RedisProcessAOF(t testing.TB) *RedisServer {
	t.Helper()
	return redisProcess(t, true)
}

func redisProcess(t testing.TB, aof bool) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		noServer(t, "redis-server is not on PATH")
	}
	s := &RedisServer{t: t, bin: bin, dir: t.TempDir(), aof: aof}
	t.Cleanup(s.kill)
	var last error
	for range 5 { // a free port can be taken between choosing and binding it
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: finding a free port for redis-server: %v", err)
		}
		s.port = port
		if last = s.start(); last == nil {
			return s
		}
	}
	t.Fatalf("testenv: starting redis-server: %v", last)
	return nil
}

// Addr returns the server's address, host:port.
func (s *RedisServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Start starts the server again on the same port after Stop or Kill, and
// returns once it answers PING; the data saved by the last Stop is loaded.
// Starting a running server does nothing.
func (s *RedisServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restarting redis-server on %s: %v", s.Addr(), err)
	}
}

// Stop saves the data set and shuts the server down (SHUTDOWN SAVE), and
// returns once the process has exited. Stopping a stopped server does
// nothing.
func (s *RedisServer) Stop() {
	s.t.Helper()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	default:
		// SHUTDOWN closes the connection without a reply; an error here
		// is expected, and whether it worked shows in done.
		_, _ = redisCommand(s.Addr(), time.Second, "SHUTDOWN", "SAVE")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.kill()
		s.t.Fatalf("testenv: redis-server on %s did not shut down in 10s", s.Addr())
	}
	s.mu.Lock()
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
}

// Kill ends the server with SIGKILL, losing the data not saved by an
// earlier Stop, and returns once the process has exited.
func (s *RedisServer) Kill() { s.kill() }

// Restart stops the server (saving its data) and starts it again on the
// same port.
func (s *RedisServer) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

func (s *RedisServer) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

func (s *RedisServer) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return nil
	}
	log := new(bytes.Buffer)
	aof := []string{"--appendonly", "no"}
	if s.aof {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	cmd := exec.Command(s.bin, append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", s.dir,
		"--dbfilename", "dump.rdb",
		"--logfile", "",
		"--daemonize", "no",
	}, aof...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			s.mu.Lock()
			s.cmd, s.done = nil, nil
			s.mu.Unlock()
			return fmt.Errorf("redis-server on port %d exited at start: %s", s.port, lastLines(log.String(), 5))
		default:
		}
		if err := PingRedis(s.Addr(), 200*time.Millisecond); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("redis-server on port %d did not answer PING in 10s: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PingRedis sends PING to the Redis server at addr and reports an error
// unless it answers PONG within timeout.
func PingRedis(addr string, timeout time.Duration) error {
	reply, err := redisCommand(addr, timeout, "PING")
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("testenv: PING %s: got %q, want +PONG", addr, reply)
	}
	return nil
}

// redisCommand sends one command in RESP and returns the first line of the
// reply.
func redisCommand(addr string, timeout time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(line[1:])
	}
	return line, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// noServer skips t, or fails it under CI=true.
func noServer(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: no Redis server: %s (CI=true, so this fails instead of skipping); %s", why, howToGetRedis)
	}
	t.Skipf("testenv: no Redis server: %s; %s", why, howToGetRedis)
}

// noProgram skips t, or fails it under CI=true, for want of the program
// bin on PATH (redis-sentinel, redis-server, nats-server).
func noProgram(t testing.TB, bin string) {
	t.Helper()
	why := fmt.Sprintf("testenv: %s is not on PATH; install it (apt-get install %s; brew install %s)",
		bin, debianPackage(bin), brewPackage(bin))
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this fails instead of skipping)", why)
	}
	t.Skipf("%s", why)
}

// debianPackage is the Debian package that installs bin.
func debianPackage(bin string) string {
	if bin == "redis-cli" {
		return "redis-tools"
	}
	return bin
}

// brewPackage is the Homebrew formula that installs bin.
func brewPackage(bin string) string {
	if strings.HasPrefix(bin, "redis-") {
		return "redis"
	}
	return bin
}
