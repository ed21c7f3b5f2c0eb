package sink_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/pacer"
)

func TestRateLimitAdvice(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name      string
		h         map[string]string
		remaining int
		reset     time.Duration
		ok        bool
	}{
		{"X-RateLimit, seconds", map[string]string{"X-RateLimit-Remaining": "42", "X-RateLimit-Reset": "3"}, 42, 3 * time.Second, true},
		{"X-RateLimit, a Unix time", map[string]string{"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "1700000030"}, 7, 30 * time.Second, true},
		{"RateLimit-Remaining and -Reset", map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "1.5"}, 0, 1500 * time.Millisecond, true},
		{"RateLimit, list form", map[string]string{"RateLimit": "limit=100, remaining=50, reset=30"}, 50, 30 * time.Second, true},
		{"RateLimit, structured form", map[string]string{"RateLimit": `"default";r=9;t=2`, "RateLimit-Policy": `"default";q=100;w=60`}, 9, 2 * time.Second, true},
		{"none", map[string]string{"X-RateLimit-Limit": "100"}, 0, 0, false},
		{"a negative remaining", map[string]string{"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "3"}, 0, 0, false},
		{"a reset that is no number", map[string]string{"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "soon"}, 0, 0, false},
		{"a Unix time past", map[string]string{"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1699999990"}, 0, 0, false},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		rem, reset, ok := sink.RateLimitAdvice(h, now)
		if ok != tc.ok || ok && (rem != tc.remaining || reset != tc.reset) {
			t.Errorf("%s: RateLimitAdvice(%v) = %d, %v, %v; want %d, %v, %v", tc.name, tc.h, rem, reset, ok, tc.remaining, tc.reset, tc.ok)
		}
	}
}

// windowServer allows quota calls in each fixed window and says how many
// are left (X-RateLimit-Remaining, -Reset in seconds), answering 429
// beyond.
type windowServer struct {
	quota  int
	window time.Duration
	start  time.Time

	mu               sync.Mutex
	at               int // the window's index
	used, ok, thr    int
	thrAfterFirstWin int
}

func (s *windowServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	el := time.Since(s.start)
	if i := int(el / s.window); i != s.at {
		s.at, s.used = i, 0
	}
	admit := s.used < s.quota
	if admit {
		s.used++
		s.ok++
	} else {
		s.thr++
		if s.at > 0 {
			s.thrAfterFirstWin++
		}
	}
	left := s.quota - s.used
	reset := s.window - el%s.window
	s.mu.Unlock()
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(left))
	// Rounded up to the millisecond, as a downstream's reset must be: one
	// rounded down would let a client start the next window early.
	w.Header().Set("X-RateLimit-Reset", fmt.Sprintf("%.3f", math.Ceil(float64(reset)/1e6)/1e3))
	if !admit {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}
}

// The http sink reads the rate-limit headers and hands them to the
// context's Advisor: with a pacer's Advise there, 20 workers against a
// downstream that allows 50 calls a second and says so are never pushed
// into a 429 once its first answer has been read.
func TestHTTPAdviceKeepsTheDownstreamUnder429(t *testing.T) {
	t.Parallel()
	ws := &windowServer{quota: 50, window: time.Second, start: time.Now()}
	srv := httptest.NewServer(ws)
	t.Cleanup(srv.Close)
	h, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pacer.New(pacer.Config{Rate: 1000, Burst: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	hctx := sink.WithAdvisor(context.Background(), p.Advise)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pm, err := p.Acquire(ctx, 1)
				if err != nil {
					return
				}
				pm.Done(h.Handle(hctx, sink.Job{ID: "1", Type: "t", Attempt: 1}))
			}
		}()
	}
	wg.Wait()
	p.Close()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t.Logf("%d answered 200, %d 429 (%d after the first window)", ws.ok, ws.thr, ws.thrAfterFirstWin)
	if ws.thrAfterFirstWin != 0 || ws.ok == 0 {
		t.Errorf("%d answers 429 after the first window (and %d 200s); want 0 once the headers are read", ws.thrAfterFirstWin, ws.ok)
	}
}
