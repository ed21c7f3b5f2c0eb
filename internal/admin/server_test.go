package admin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/admin"
	"github.com/jobpacer/pacer/internal/testenv"
)

func serve(t *testing.T, ready func() error) (*admin.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := admin.Serve(ln, http.NotFoundHandler(), ready)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthzAndReadyz(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	_, base := serve(t, func() error {
		if down.Load() {
			return errors.New(`worker "w" down`)
		}
		return nil
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: worker \"w\" down\n" {
		t.Errorf("GET /readyz while down = %d %q, want 503 and the reason", code, body)
	}
	down.Store(false)
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz once up = %d, want 200", code)
	}
}

func TestConnectionsCapped(t *testing.T) {
	s, base := serve(t, func() error { return nil })
	addr := base[len("http://"):]
	const extra = 10
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range admin.MaxConns + extra {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	testenv.WaitFor(t, 10*time.Second, "the connections beyond the cap to be refused", func() bool { return s.Refused() == extra })
	if got := s.Open(); got != admin.MaxConns {
		t.Errorf("Open() = %d with %d connections dialled, want the cap, %d", got, admin.MaxConns+extra, admin.MaxConns)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testenv.WaitFor(t, 10*time.Second, "the server to serve again", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
