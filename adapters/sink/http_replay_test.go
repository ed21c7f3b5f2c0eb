package sink_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/jobpacer/pacer/adapters/sink"
)

// closingServer answers the first request of each connection 200 and
// keeps the connection alive, then reads the next request on it and
// closes the connection without answering: a keep-alive connection the
// server drops as a request arrives. It counts the requests of each job.
type closingServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
	reqs  map[string]int // X-Pacer-Job-Id → requests received
	total int
}

func newClosingServer(t *testing.T) *closingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &closingServer{ln: ln, reqs: map[string]int{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *closingServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for n := 1; ; n++ {
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		s.mu.Lock()
		s.reqs[req.Header.Get("X-Pacer-Job-Id")]++
		s.total++
		s.mu.Unlock()
		if n > 1 {
			return // the whole request read, no answer: closed
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); err != nil {
			return
		}
	}
}

// A request net/http sent on a reused connection that closed without an
// answer is not sent again behind pacer's back: the Idempotency-Key
// header made net/http take the POST as replayable and resend it on a new
// connection, the same attempt number, no failure seen (issue 19: 20 jobs,
// 39 requests). Now each request the server receives is an attempt pacer
// counts: answered (nil) or failed (an error, retried by the source).
func TestHTTPNoHiddenResend(t *testing.T) {
	t.Parallel()
	srv := newClosingServer(t)
	s, err := sink.NewHTTP(sink.HTTPConfig{URL: "http://" + srv.ln.Addr().String() + "/jobs"})
	if err != nil {
		t.Fatal(err)
	}
	const jobs = 20
	failed := 0
	for i := range jobs {
		j := job()
		j.ID = "job-" + strconv.Itoa(i)
		if err := s.Handle(context.Background(), j); err != nil {
			failed++
			if failed == 1 {
				t.Logf("job %s: %v", j.ID, err)
			}
			if errors.Is(err, sink.ErrPermanent) {
				t.Errorf("job %s: %v: a connection closed without an answer is retried, not permanent", j.ID, err)
			}
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	t.Logf("%d jobs: %d requests at the server, %d attempts failed", jobs, srv.total, failed)
	for id, n := range srv.reqs {
		if n != 1 {
			t.Errorf("job %s: %d requests at the server for one Handle, want 1", id, n)
		}
	}
	if srv.total != jobs {
		t.Errorf("%d requests for %d jobs, want one each", srv.total, jobs)
	}
	if failed == 0 {
		t.Error("no attempt failed: the server closed every reused connection without an answer")
	}
}
