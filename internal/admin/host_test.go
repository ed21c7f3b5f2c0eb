package admin_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/admin"
)

// A request whose Host is not a name of the admin server (what a page
// that a DNS-rebinding attack pointed at 127.0.0.1 sends) gets 421 on
// every route; its own names get the page. Bound to every address, the
// server takes any Host.
func TestAdminChecksHost(t *testing.T) {
	t.Parallel()
	secret := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("samples")) })
	start := func(bind string) (*admin.Server, string) {
		ln, err := net.Listen("tcp", bind)
		if err != nil {
			t.Skipf("cannot listen on %s: %v", bind, err)
		}
		s := admin.Serve(ln, secret, func() error { return nil })
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
		})
		return s, ln.Addr().String()
	}
	status := func(addr, host, path string) int {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, addr := start("127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	hostname, _ := os.Hostname()
	for host, want := range map[string]int{
		addr:                               http.StatusOK,
		"localhost:" + port:                http.StatusOK,
		"LOCALHOST.:" + port:               http.StatusOK,
		"[::1]:" + port:                    http.StatusOK,
		hostname + ":" + port:              http.StatusOK,
		"evil.example.com:" + port:         http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:" + port:         http.StatusMisdirectedRequest,
		"localhost:1" + port:               http.StatusMisdirectedRequest,
		"localhost":                        http.StatusMisdirectedRequest, // port 80
		"evil.example.com":                 http.StatusMisdirectedRequest,
		"10.1.2.3:" + port:                 http.StatusMisdirectedRequest,
		strconv.Quote("localhost:" + port): http.StatusMisdirectedRequest,
	} {
		for _, path := range []string{"/samples", "/healthz"} {
			if got := status(addr, host, path); got != want {
				t.Errorf("GET %s with Host %q: %d, want %d", path, host, got, want)
			}
		}
	}
	_, any := start("0.0.0.0:0")
	_, anyPort, _ := net.SplitHostPort(any)
	if got := status("127.0.0.1:"+anyPort, "evil.example.com", "/samples"); got != http.StatusOK {
		t.Errorf("bound to 0.0.0.0, GET /samples with Host evil.example.com: %d, want 200", got)
	}
}
