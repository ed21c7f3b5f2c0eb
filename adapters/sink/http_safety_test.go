package sink_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jobpacer/pacer/adapters/sink"
)

// TestHTTPRedirectNotFollowed: a 302 to a login page and a 307 to another
// host are failures that name the Location; the other host sees nothing,
// neither the payload nor the credentials.
func TestHTTPRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	defer other.Close()
	for _, tt := range []struct {
		name  string
		code  int
		retry bool
	}{
		{"302 to a login page is permanent", http.StatusFound, false},
		{"307 to another host is permanent", http.StatusTemporaryRedirect, false},
		{"308 with retry_redirects is retried", http.StatusPermanentRedirect, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/login", tt.code)
			}))
			defer srv.Close()
			s, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, RetryRedirects: tt.retry,
				Headers: map[string]string{"X-Api-Key": "k3y"}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Handle(context.Background(), job())
			if err == nil {
				t.Fatalf("Handle() = nil after a %d, want an error", tt.code)
			}
			if got := errors.Is(err, sink.ErrPermanent); got == tt.retry {
				t.Fatalf("errors.Is(%v, ErrPermanent) = %v, want %v", err, got, !tt.retry)
			}
			if !strings.Contains(err.Error(), other.URL+"/login") {
				t.Fatalf("error %q does not name the Location %s/login", err, other.URL)
			}
		})
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests, want 0", n)
	}
}

// TestHTTPSecretsNeverShown: the URL's password and query appear in no
// outcome, whatever the answer or transport error, nor in a config error.
func TestHTTPSecretsNeverShown(t *testing.T) {
	t.Parallel()
	const pw, tok = "S3CRETPW", "T0KEN"
	codes := []int{500, 429, 400, 302}
	var i atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := codes[int(i.Add(1)-1)%len(codes)]
		if c == 302 {
			w.Header().Set("Location", "http://u:"+pw+"@example.invalid/?token="+tok)
		}
		w.WriteHeader(c)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s, err := sink.NewHTTP(sink.HTTPConfig{URL: "http://user:" + pw + "@" + host + "/hook?token=" + tok})
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for range codes {
		errs = append(errs, s.Handle(context.Background(), job()))
	}
	// A refused connection: a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	d, err := sink.NewHTTP(sink.HTTPConfig{URL: "http://user:" + pw + "@" + dead + "/?token=" + tok})
	if err != nil {
		t.Fatal(err)
	}
	errs = append(errs, d.Handle(context.Background(), job()))
	_, err = sink.NewHTTP(sink.HTTPConfig{URL: "ftp://user:" + pw + "@h/?token=" + tok})
	errs = append(errs, err)
	_, err = sink.NewHTTP(sink.HTTPConfig{URL: srv.URL, Headers: map[string]string{"X-Api-Key": pw + "\n"}})
	errs = append(errs, err)
	for _, e := range errs {
		if e == nil {
			t.Fatal("want an error for each case")
		}
		if m := e.Error(); strings.Contains(m, pw) || strings.Contains(m, tok) {
			t.Errorf("error shows a secret: %s", m)
		}
	}
}

// TestHTTPControlCharInJobIsPermanent: a CR, LF or NUL in a job's id or
// type fails at once as permanent, without a request.
func TestHTTPControlCharInJobIsPermanent(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	s, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"a\rb", "a\nb", "a\x00b"} {
		j := job()
		j.Type = bad
		if err := s.Handle(context.Background(), j); !errors.Is(err, sink.ErrPermanent) {
			t.Errorf("Handle(type %q) = %v, want ErrPermanent", bad, err)
		}
		j = job()
		j.ID = bad
		if err := s.Handle(context.Background(), j); !errors.Is(err, sink.ErrPermanent) {
			t.Errorf("Handle(id %q) = %v, want ErrPermanent", bad, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server got %d requests, want 0", n)
	}
}

// TestHTTPIdempotencyKey: the job's id goes in Idempotency-Key.
func TestHTTPIdempotencyKey(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Idempotency-Key")
	}))
	defer srv.Close()
	s, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(context.Background(), job()); err != nil {
		t.Fatal(err)
	}
	if k := <-got; k != "j1" {
		t.Fatalf("Idempotency-Key = %q, want %q", k, "j1")
	}
}

// TestExecNULInJobIsPermanent: a NUL in a job's id or type fails at once as
// permanent (the environment cannot hold it); CR and LF pass through.
func TestExecNULInJobIsPermanent(t *testing.T) {
	t.Parallel()
	s, err := sink.NewExec(sink.ExecConfig{Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	j := job()
	j.Type = "a\x00b"
	if err := s.Handle(context.Background(), j); !errors.Is(err, sink.ErrPermanent) {
		t.Fatalf("Handle(type with NUL) = %v, want ErrPermanent", err)
	}
	j.Type = "a\r\nb"
	if err := s.Handle(context.Background(), j); err != nil {
		t.Fatalf("Handle(type with CR LF) = %v, want nil", err)
	}
}

// TestHTTPReusesConnections: jobs sent 32 at a time reuse the sink's
// keep-alive connections instead of opening one per job (net/http's
// default transport keeps only 2 idle connections a host).
func TestHTTPReusesConnections(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	const par, rounds = 32, 20
	for range rounds {
		errs := make(chan error, par)
		for range par {
			go func() { errs <- s.Handle(context.Background(), job()) }()
		}
		for range par {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each round may open a few more while others are still busy; one
	// per job (640) is what the default transport's 2 idle slots give.
	if n := conns.Load(); n > 4*par {
		t.Fatalf("%d jobs opened %d connections, want ≤ %d", par*rounds, n, 4*par)
	}
}
