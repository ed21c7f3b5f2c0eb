package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the admin server: a client that opens connections and sends
// nothing, or keeps them idle, cannot exhaust the worker's file
// descriptors.
const (
	// MaxConns is the most connections open at once; the server closes
	// any more at once.
	MaxConns = 64
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server's.
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 30 * time.Second
)

// Server is the admin HTTP server: h, plus /healthz (200 while the
// process serves) and /readyz (200 when ready returns nil, else 503 and
// the reason), under the limits above. Unless it listens on every address
// (0.0.0.0 or [::]), it answers only requests whose Host header is one of
// its own names (localhost, a loopback IP, the IP it listens on, the
// machine's host name, with its port) and 421 Misdirected Request to
// others, so that a DNS-rebinding page cannot read it. Make one with
// Serve.
type Server struct {
	srv  *http.Server
	ln   *capListener
	done chan struct{}
}

// Serve serves h, /healthz and /readyz on ln in a goroutine of its own
// until Shutdown. ready is called at each /readyz request, from the
// server's goroutines.
func Serve(ln net.Listener, h http.Handler, ready func() error) *Server {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	s := &Server{
		srv: &http.Server{
			Handler: checkHost(ln.Addr(), mux), ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout,
			WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: 64 << 10,
		},
		ln:   &capListener{Listener: ln, max: MaxConns},
		done: make(chan struct{}),
	}
	go func() { defer close(s.done); _ = s.srv.Serve(s.ln) }()
	return s
}

// Open returns the connections open now.
func (s *Server) Open() int { return int(s.ln.open.Load()) }

// Refused returns how many connections were closed at once because
// MaxConns were open.
func (s *Server) Refused() uint64 { return s.ln.refused.Load() }

// Shutdown stops the server: it closes the listener and the idle
// connections, waits for requests in flight until ctx ends, then closes
// the rest, and returns once the serving goroutine has stopped.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// capListener closes the connections it accepts beyond max open ones.
type capListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Uint64
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
