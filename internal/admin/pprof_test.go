package admin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/admin"
)

// Mounted beside the other routes, /debug/pprof/ serves the index and
// the profiles to a loopback client, through the server's Host check;
// a client from another address gets 403.
func TestPprofLoopbackOnly(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("/", http.NotFoundHandler())
	mux.Handle("/debug/pprof/", admin.Pprof())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen: %v", err)
	}
	s := admin.Serve(ln, mux, func() error { return nil })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/: %d %.80q, want 200 with the index", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("GET /debug/pprof/goroutine?debug=1: %d %.80q, want 200 with the profile", code, body)
	}
	// A CPU profile of one second: pprof would refuse a duration past the
	// server's WriteTimeout; this one is short, and must pass the check.
	if code, body := get("/debug/pprof/profile?seconds=1"); code != http.StatusOK || len(body) == 0 {
		t.Errorf("GET /debug/pprof/profile?seconds=1: %d, %d bytes, want 200 with a profile", code, len(body))
	}
	if code, _ := get("/debug/pprof/profile?seconds=100000"); code != http.StatusBadRequest {
		t.Errorf("GET /debug/pprof/profile?seconds=100000: %d, want 400", code)
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/debug/pprof/", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	admin.Pprof().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("GET /debug/pprof/ from 192.0.2.7: %d, want 403", rec.Code)
	}
}
