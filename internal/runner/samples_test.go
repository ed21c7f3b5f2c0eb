package runner_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/admin"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/internal/testenv"
)

// /samples holds a sample a second per worker, in columns of one length;
// a fleet's workers have their fleet's share, the others none; since=
// returns only newer samples; the dashboard's routes are GETs only.
func TestSamplesAndTheDashboardRoutes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	p := "samples"
	writeConfig(t, path, brokers.Embedded, 200, p, 1)
	r, _ := startRunner(t, path)
	srv := httptest.NewServer(admin.Handler(r.Status, r.Samples))
	defer srv.Close()

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	samples := func(path string) status.Samples {
		t.Helper()
		resp, body := get(path)
		var s status.Samples
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &s) != nil {
			t.Fatalf("GET %s: %s %s", path, resp.Status, body)
		}
		return s
	}
	testenv.WaitFor(t, 10*time.Second, "3 samples of every worker", func() bool {
		for _, w := range r.Samples(time.Time{}).Workers {
			if len(w.T) < 3 {
				return false
			}
		}
		return true
	})

	s := samples("/samples")
	if s.Every != 1 || s.Window != 300 || len(s.Workers) != 3 || s.Process.Started.IsZero() {
		t.Fatalf("/samples: every %v s, window %v s, %d workers, started %v; want 1, 300, 3, a time", s.Every, s.Window, len(s.Workers), s.Process.Started)
	}
	// The fleet uses Redis; nothing uses NATS, so the header leaves it out.
	if len(s.Brokers) != 1 {
		t.Errorf("brokers = %+v, want only the redis the fleet uses", s.Brokers)
	} else if b := s.Brokers[0]; b.Kind != "redis" || !b.Embedded || !strings.HasPrefix(b.Addr, "127.0.0.1:") {
		t.Errorf("brokers[0] = %+v, want the embedded redis with its address", b)
	}
	st := r.Status()
	for _, w := range s.Workers {
		n := len(w.T)
		for name, col := range map[string][]float64{"pace": w.Pace, "ceiling": w.Ceiling, "done_per_s": w.Done,
			"throttled_per_s": w.Throttled, "backlog": w.Backlog, "factor": w.Factor, "in_flight": w.InFlight, "paused": w.Paused} {
			if len(col) != n {
				t.Errorf("worker %s: %s has %d values for %d times", w.Name, name, len(col), n)
			}
		}
		for i := 1; i < n; i++ {
			if d := w.T[i] - w.T[i-1]; d < 0.5 || d > 1.5 {
				t.Errorf("worker %s: samples %d and %d are %.3f s apart, want about 1", w.Name, i-1, i, d)
			}
		}
		fleet := w.Name != p+"_solo"
		if fleet && (len(w.FleetShare) != n || w.FleetShare[n-1] != 50 || w.Last.FleetMode != "redis" || w.Last.FleetProcesses != 1) {
			t.Errorf("worker %s: fleet share %v, mode %q, processes %d; want %d values of 50 (200 ÷ expected_workers 4), redis, 1",
				w.Name, w.FleetShare, w.Last.FleetMode, w.Last.FleetProcesses, n)
		}
		if !fleet && (w.FleetShare != nil || w.Fleet != "") {
			t.Errorf("worker %s (no fleet): fleet %q, share %v; want none", w.Name, w.Fleet, w.FleetShare)
		}
		// The count sink never pushes back: no capacity estimate (0).
		if len(w.Capacity) != n || slices.ContainsFunc(w.Capacity, func(c float64) bool { return c != 0 }) {
			t.Errorf("worker %s: capacity %v, want %d zeros (no pushback, no estimate)", w.Name, w.Capacity, n)
		}
		if w.Last == nil || w.Last.Reason == "" {
			t.Errorf("worker %s: last %+v, want the reason for the pace", w.Name, w.Last)
		}
		ws := workerStatus(t, st, w.Name)
		if w.Last == nil || w.Last.Succeeded == 0 || w.Last.Succeeded > ws.Succeeded || w.Ceiling[n-1] != ws.Ceiling {
			t.Errorf("worker %s: last %+v, ceiling %v; /status afterwards: succeeded %d, ceiling %v", w.Name, w.Last, w.Ceiling[n-1], ws.Succeeded, ws.Ceiling)
		}
		if w.Done[n-1] <= 0 {
			t.Errorf("worker %s: done/s %v at the last sample of a backlogged worker, want > 0", w.Name, w.Done[n-1])
		}
	}

	// since: only the newer samples; the last values whatever.
	newest := s.Workers[0].T[len(s.Workers[0].T)-1]
	later := samples("/samples?since=" + strconv.FormatFloat(newest, 'f', -1, 64))
	for _, w := range later.Workers {
		for _, ts := range w.T {
			if ts <= newest {
				t.Errorf("worker %s: since=%v returned the sample of %v", w.Name, newest, ts)
			}
		}
		if w.Last == nil {
			t.Errorf("worker %s: since=newest has no last values", w.Name)
		}
	}

	// The page, its assets and bad input.
	resp, body := get("/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<script src="dashboard/app.js"`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("GET /: %s, CSP %q:\n%.200s", resp.Status, resp.Header.Get("Content-Security-Policy"), body)
	}
	for path, want := range map[string]string{
		"/dashboard/uPlot.iife.min.js": "https://github.com/leeoniya/uPlot (v1.6.32)",
		"/dashboard/uPlot.LICENSE":     "The MIT License",
		"/dashboard/app.js":            "/samples",
		"/dashboard/app.css":           ".panel",
	} {
		if resp, body := get(path); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, want 200 with %q", path, resp.Status, want)
		}
	}
	for path, want := range map[string]int{"/dashboard/": 404, "/dashboard/nope.js": 404, "/nope": 404,
		"/samples?since=-1": 400, "/samples?since=NaN": 400, "/samples?since=yesterday": 400} {
		if resp, body := get(path); resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		} else if want == 400 && !strings.Contains(string(body), "admin: since:") {
			t.Errorf("GET %s: %q, want an error naming since", path, body)
		}
	}
	for _, path := range []string{"/", "/samples", "/status", "/metrics", "/dashboard/app.js"} {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %s, want 405 (the admin server only reads)", method, path, resp.Status)
			}
		}
	}
}
