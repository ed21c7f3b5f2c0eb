package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// howToGetNATS is the hint in a skip or failure message.
const howToGetNATS = "unset NATS_URL to use an embedded nats-server, or point it at a running one " +
	"(nats-server -js; docker run -p 4222:4222 nats -js)"

// NATSServer is a NATS server for one test: an embedded nats-server with
// JetStream, or the external server named by NATS_URL. An embedded server
// listens on a port of its own on 127.0.0.1 and keeps its JetStream store in
// a temporary directory of the test, so Stop and Start (or Restart) bring it
// back on the same URL with the same streams, consumers and messages; an
// external server cannot be stopped, and those methods skip the test. Its
// methods are safe for concurrent use; failures fail the test that made it.
type NATSServer struct {
	t        testing.TB
	external string // NATS_URL, or "" for an embedded server
	opts     server.Options

	mu  sync.Mutex     // guards srv and opts.Port
	srv *server.Server // nil while stopped

	log SyncBuffer // the embedded server's warnings and errors
}

// NATS returns a NATS server with JetStream for t: the server at NATS_URL
// if that is set, else an embedded nats-server (the real one, as a library)
// on a free port of 127.0.0.1, whose store lives in t.TempDir(). The
// embedded server is shut down when t's cleanup runs. When NATS_URL is set
// but does not answer, NATS skips t with a message saying how to get a
// server, or fails t when the environment variable CI is "true".
//
// An external server may be shared with other tests: use unique stream,
// consumer and subject names. Tests that stop or restart the server should
// use NATSEmbedded.
func NATS(t testing.TB) *NATSServer {
	t.Helper()
	if url := os.Getenv("NATS_URL"); url != "" {
		if err := PingNATS(url, 2*time.Second); err != nil {
			noNATS(t, fmt.Sprintf("NATS_URL=%s does not answer: %v", url, err))
		}
		return &NATSServer{t: t, external: url}
	}
	return NATSEmbedded(t)
}

// NATSEmbedded is NATS without the NATS_URL override: it always starts an
// embedded nats-server of t's own, which the test may stop and restart.
func NATSEmbedded(t testing.TB) *NATSServer {
	t.Helper()
	return NATSEmbeddedWith(t, nil)
}

// NATSEmbeddedWith is NATSEmbedded with the server's options adjusted by
// configure (if not nil) before it starts: TLS, users, nkeys, accounts.
func NATSEmbeddedWith(t testing.TB, configure func(*server.Options)) *NATSServer {
	t.Helper()
	s := &NATSServer{t: t, opts: server.Options{
		ServerName: "pacer-test",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		// Keep the default limits modest: tests share a 2-core machine.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}}
	if configure != nil {
		configure(&s.opts)
	}
	if err := keepStreamDirs(&s.opts); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.stop)
	t.Cleanup(func() {
		// The server's own account of a failure (a stream it could not
		// create says only "error creating store for stream" to the client).
		if t.Failed() {
			if l := s.log.String(); l != "" {
				t.Logf("testenv: embedded nats-server's warnings and errors:\n%s", l)
			}
		}
	})
	if err := s.start(); err != nil {
		t.Fatalf("testenv: starting embedded nats-server: %v", err)
	}
	return s
}

// keepFile is the file keepStreamDirs leaves in each account's streams
// directory.
const keepFile = "testenv-keep"

// keepStreamDirs puts a file in the streams directory of each account the
// server can have (the global one and opts.Accounts), so that it is never
// empty. Deleting an account's last stream makes nats-server remove that
// directory, if empty, in a goroutine of its own: a stream created next can
// lose the race (MkdirAll sees its parent go) and fail with "error creating
// store for stream" (10049). Tests that delete a stream and create another
// on the same server did that one run in a few on a loaded machine.
func keepStreamDirs(opts *server.Options) error {
	accounts := []string{server.DEFAULT_GLOBAL_ACCOUNT}
	for _, a := range opts.Accounts {
		accounts = append(accounts, a.Name)
	}
	for _, a := range accounts {
		dir := filepath.Join(opts.StoreDir, server.JetStreamStoreDir, a, "streams")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("keeping the streams directory of account %q: %w", a, err)
		}
		if err := writeFile(filepath.Join(dir, keepFile), "testenv: keeps this directory from being removed under a new stream\n"); err != nil {
			return fmt.Errorf("keeping the streams directory of account %q: %w", a, err)
		}
	}
	return nil
}

// URL returns the URL clients connect to, nats://host:port. It stays the
// same across Stop and Start.
func (s *NATSServer) URL() string {
	if s.external != "" {
		return s.external
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// Embedded reports whether the server is an embedded one that Stop, Start
// and Restart can control.
func (s *NATSServer) Embedded() bool { return s.external == "" }

// Stop shuts the embedded server down and returns once it has stopped;
// clients see their connection drop. The JetStream store is kept for
// Start. Stopping a stopped server does nothing. On an external server
// Stop skips the test.
func (s *NATSServer) Stop() {
	s.t.Helper()
	s.needEmbedded("Stop")
	s.stop()
}

// Start starts the embedded server again on the same port and store after
// Stop, and returns once it accepts connections. Starting a running server
// does nothing. On an external server Start skips the test.
func (s *NATSServer) Start() {
	s.t.Helper()
	s.needEmbedded("Start")
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restarting nats-server on %s: %v", s.URL(), err)
	}
}

// Restart stops the embedded server and starts it again on the same port
// and store. On an external server Restart skips the test.
func (s *NATSServer) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

func (s *NATSServer) needEmbedded(what string) {
	s.t.Helper()
	if s.external != "" {
		s.t.Skipf("testenv: NATSServer.%s needs an embedded nats-server, and NATS_URL=%s is external; "+
			"unset NATS_URL or use testenv.NATSEmbedded", what, s.external)
	}
}

func (s *NATSServer) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

func (s *NATSServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var last error
	// The port can be slow to come free after a shutdown, and a random
	// one can be taken between choosing and binding it: retry briefly.
	for attempt := range 20 {
		if attempt > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		opts := s.opts // NewServer keeps a pointer; give each server its own
		srv, err := server.NewServer(&opts)
		if err != nil {
			return err
		}
		srv.SetLogger(serverLog{&s.log}, false, false)
		srv.Start()
		if !srv.ReadyForConnections(3 * time.Second) {
			srv.Shutdown()
			srv.WaitForShutdown()
			last = fmt.Errorf("nats-server on %s:%d not ready for connections in 3s (port taken?)", s.opts.Host, s.opts.Port)
			continue
		}
		if !srv.JetStreamEnabled() {
			srv.Shutdown()
			srv.WaitForShutdown()
			return fmt.Errorf("nats-server on %s:%d started without JetStream (store %s)", s.opts.Host, s.opts.Port, s.opts.StoreDir)
		}
		if s.opts.Port == server.RANDOM_PORT {
			s.opts.Port = srv.Addr().(*net.TCPAddr).Port
		}
		s.srv = srv
		return nil
	}
	return last
}

// PingNATS connects to the NATS server at url and reports an error unless
// it answers a round trip within timeout.
func PingNATS(url string, timeout time.Duration) error {
	nc, err := nats.Connect(url, nats.Timeout(timeout), nats.NoReconnect(), nats.Name("pacer testenv ping"))
	if err != nil {
		return err
	}
	defer nc.Close()
	return nc.FlushTimeout(timeout)
}

// noNATS skips t, or fails it under CI=true.
func noNATS(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: no NATS server: %s (CI=true, so this fails instead of skipping); %s", why, howToGetNATS)
	}
	t.Skipf("testenv: no NATS server: %s; %s", why, howToGetNATS)
}

// JetStream connects to the NATS server at url and returns its JetStream
// API; the connection closes when the test ends.
func JetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("nats.Connect(%q): %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

// serverLog is a nats-server logger that keeps warnings and errors in w.
type serverLog struct{ w *SyncBuffer }

func (l serverLog) Noticef(string, ...any) {}
func (l serverLog) Debugf(string, ...any)  {}
func (l serverLog) Tracef(string, ...any)  {}
func (l serverLog) Warnf(format string, v ...any) {
	if msg := fmt.Sprintf(format, v...); !strings.Contains(msg, keepFile) { // not a stream: no metafile
		fmt.Fprintf(l.w, "[WRN] %s\n", msg)
	}
}
func (l serverLog) Errorf(format string, v ...any) {
	fmt.Fprintf(l.w, "[ERR] "+format+"\n", v...)
}
func (l serverLog) Fatalf(format string, v ...any) {
	fmt.Fprintf(l.w, "[FTL] "+format+"\n", v...)
}
