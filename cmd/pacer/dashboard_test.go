package main_test

//go:generate go test -run ^TestDashboardInChromium$ -count=1 . -args -dashboard.png=../../docs/dashboard.png -dashboard.run=150s

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/time/rate"

	"github.com/jobpacer/pacer/internal/status"
	"github.com/jobpacer/pacer/internal/testenv"
)

var (
	dashboardPNG = flag.String("dashboard.png", "", "also write the dashboard's screenshot to `file` (go generate writes docs/dashboard.png)")
	dashboardRun = flag.Duration("dashboard.run", 0, "let `pacer run` go this long before the checks and the screenshot")
)

// chromium returns the path of a Chromium, or skips t; under CI=true it
// fails t instead.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// statusLog records /status of an admin address every 20 ms, with the
// time each answer came back, until the test ends.
type statusLog struct {
	mu   sync.Mutex // guards rows
	rows []statusRow
}

type statusRow struct {
	at time.Time
	st status.Status
}

func recordStatus(t *testing.T, admin string) *statusLog {
	l := &statusLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, _, err := status.Fetch(admin); err == nil {
				l.mu.Lock()
				l.rows = append(l.rows, statusRow{time.Now(), st})
				l.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// worker returns the state of worker name in the answers that came back
// in [from, to].
// past waits until a /status row recorded after t is in the log.
func (l *statusLog) past(tb testing.TB, t time.Time) {
	tb.Helper()
	testenv.WaitFor(tb, 10*time.Second, "a /status row recorded after "+t.Format("15:04:05.000"), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.rows) > 0 && l.rows[len(l.rows)-1].at.After(t)
	})
}

func (l *statusLog) worker(name string, from, to time.Time) []status.WorkerStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []status.WorkerStatus
	for _, r := range l.rows {
		if r.at.Before(from) || r.at.After(to) {
			continue
		}
		for _, w := range r.st.Workers {
			if w.Name == name {
				out = append(out, w)
			}
		}
	}
	return out
}

// pagePanel is what the page shows for one worker.
type pagePanel struct {
	Worker string            `json:"worker"`
	T      float64           `json:"t"` // the time of the sample shown, Unix seconds
	Values map[string]string `json:"values"`
	Charts []struct {
		Title  string `json:"title"`
		Points int    `json:"points"` // points the chart holds
		Ink    int    `json:"ink"`    // coloured pixels on its canvas: lines drawn
	} `json:"charts"`
}

type pageHeader struct {
	Process string `json:"process"`
	Brokers string `json:"brokers"`
	Uptime  string `json:"uptime"`
	Conn    string `json:"conn"`
}

const readPanels = `[...document.querySelectorAll('section.panel')].map((p) => {
  const v = (k) => { const e = p.querySelector('.tile[data-k="' + k + '"] .val b'); return e ? e.textContent : ''; };
  const s = (k) => { const e = p.querySelector('.sub [data-k="' + k + '"]'); return e ? e.textContent : ''; };
  return {
    worker: p.dataset.worker, t: Number(p.dataset.t || 0),
    values: { pace: v('pace'), ceiling: v('ceiling'), backlog: v('backlog'), in_flight: v('in_flight'), factor: v('factor'),
      capacity: v('capacity'), succeeded: s('succeeded'), failed: s('failed'), throttled: s('throttled'), pauses: s('pauses'),
      cuts: s('cuts'), reason: s('reason') },
    charts: [...p.querySelectorAll('.chart')].map((c) => {
      const cv = c.querySelector('canvas');
      const copy = document.createElement('canvas');
      copy.width = cv.width;
      copy.height = cv.height;
      const cx = copy.getContext('2d', { willReadFrequently: true });
      cx.drawImage(cv, 0, 0);
      const d = cx.getImageData(0, 0, cv.width, cv.height).data;
      let ink = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 200 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 90) ink++;
      }
      return { title: c.querySelector('h3').firstChild.textContent, points: Number(c.dataset.points || 0), ink };
    }),
  };
})`

const readHeader = `({ process: document.querySelector('#process').textContent, brokers: document.querySelector('#brokers').textContent,
  uptime: document.querySelector('#uptime').textContent, conn: document.querySelector('#conn').className })`

// fields maps each number the page shows to the same number in /status.
var fields = map[string]func(w status.WorkerStatus) float64{
	"pace":      func(w status.WorkerStatus) float64 { return w.Pace },
	"ceiling":   func(w status.WorkerStatus) float64 { return w.Ceiling },
	"backlog":   func(w status.WorkerStatus) float64 { return float64(w.Backlog) },
	"in_flight": func(w status.WorkerStatus) float64 { return float64(w.InFlight) },
	"factor":    func(w status.WorkerStatus) float64 { return w.Factor },
	"succeeded": func(w status.WorkerStatus) float64 { return float64(w.Succeeded) },
	"failed":    func(w status.WorkerStatus) float64 { return float64(w.Failed) },
	"throttled": func(w status.WorkerStatus) float64 { return float64(w.Throttled) },
	"pauses":    func(w status.WorkerStatus) float64 { return float64(w.Pauses) },
	"capacity":  func(w status.WorkerStatus) float64 { return w.Capacity },
	"cuts":      func(w status.WorkerStatus) float64 { return float64(w.Cuts) },
}

// shown parses a number as the page shows it ("1,234.5"; "–" for a
// capacity not estimated, 0 in /status) and returns it with half a unit
// of its last digit: the rounding of the display.
func shown(s string) (v, tol float64, err error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	if s == "–" {
		return 0, 0, nil
	}
	v, err = strconv.ParseFloat(s, 64)
	decimals := 0
	if _, frac, ok := strings.Cut(s, "."); ok {
		decimals = len(frac)
	}
	return v, 0.5*math.Pow10(-decimals) + 1e-9, err
}

// The dashboard in a real browser, against a real `pacer run` on the
// default config: the page loads with no console error, shows a panel per
// worker whose charts hold points, and the numbers it shows are those of
// /status within one sample; it keeps working across a restart of the
// process. It saves a screenshot (and writes docs/dashboard.png under
// go generate).
func TestDashboardInChromium(t *testing.T) {
	browser := chromium(t)
	t.Parallel()
	cfg, err := os.ReadFile("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := startRun(t, dir, string(cfg))
	statuses := recordStatus(t, p.admin)
	workers := p.status().Workers
	if len(workers) != 2 {
		t.Fatalf("the default config runs %d workers, want 2", len(workers))
	}

	ctx, consoleSince := openBrowser(t, browser)
	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		runAction(ctx, t, what, a)
	}

	run("open the dashboard", chromedp.Navigate("http://"+p.admin+"/"))
	if *dashboardRun > 0 {
		t.Logf("letting the run go %v before the checks", *dashboardRun)
		time.Sleep(*dashboardRun)
	}
	// Every panel's charts hold at least 5 points.
	run("wait for the charts to hold points", chromedp.Poll[chromedp.Void](`document.querySelectorAll('section.panel').length == 2 &&
		[...document.querySelectorAll('section.panel .chart')].every((c) => Number(c.dataset.points || 0) >= 5)`,
		chromedp.WithPollingTimeout(40*time.Second)))

	// checkPage checks the page against /status and returns the time of
	// the newest sample it shows.
	checkPage := func(pid int) (newest float64) {
		t.Helper()
		panels := evaluate[[]pagePanel](ctx, t, readPanels)
		if len(panels) != len(workers) {
			t.Fatalf("%d panels on the page, want one per worker (%d)", len(panels), len(workers))
		}
		for i, w := range workers {
			pp := panels[i]
			if pp.Worker != w.Name {
				t.Errorf("panel %d is worker %q, want %q", i, pp.Worker, w.Name)
			}
			if len(pp.Charts) != 3 {
				t.Errorf("worker %q: %d charts, want 3", w.Name, len(pp.Charts))
			}
			for _, c := range pp.Charts {
				if c.Points < 5 || c.Ink < 50 {
					t.Errorf("worker %q, chart %q: %d points, %d coloured pixels; want ≥ 5 and ≥ 50", w.Name, c.Title, c.Points, c.Ink)
				}
			}
		}
		h := evaluate[pageHeader](ctx, t, readHeader)
		if !strings.Contains(h.Process, fmt.Sprintf("pid %d", pid)) || !strings.Contains(h.Brokers, "redis embedded 127.0.0.1:") ||
			!strings.Contains(h.Brokers, "nats embedded nats://127.0.0.1:") || h.Uptime == "–" || !strings.Contains(h.Conn, "live") {
			t.Errorf("header %+v: want pid %d, the embedded brokers, an uptime and live", h, pid)
		}
		// The numbers shown: those of /status within one sample (1 s)
		// of the sample they come from.
		for _, pp := range panels {
			newest = max(newest, pp.T)
			at := time.UnixMilli(int64(pp.T * 1000))
			// A sample a second, polled every second: a live page is a
			// second or two behind. The bound is wider (a CI run beside
			// other builds saw 6.6 s: chromium starved of CPU), still far
			// under the run's 20 s, so a page that stopped polling fails.
			if age := time.Since(at); age > 10*time.Second || age < -time.Second {
				t.Errorf("worker %q: the page shows the sample of %v, %v old; want at most 10 s (a sample a second, polled every second)", pp.Worker, at, age)
				continue
			}
			statuses.past(t, at.Add(time.Second)) // /status recorded past the sample's second
			rows := statuses.worker(pp.Worker, at.Add(-time.Second), at.Add(time.Second))
			if len(rows) < 10 {
				t.Fatalf("worker %q: %d /status answers within 1 s of the sample, want ≥ 10", pp.Worker, len(rows))
			}
			for k, f := range fields {
				v, tol, err := shown(pp.Values[k])
				if err != nil {
					t.Errorf("worker %q: %s shown as %q: %v", pp.Worker, k, pp.Values[k], err)
					continue
				}
				if k == "in_flight" {
					// Jobs in the sink now: a log sink's job lasts
					// microseconds, so one reading sees it and the
					// next does not.
					tol = max(tol, 1)
				}
				lo, hi := math.Inf(1), math.Inf(-1)
				for _, r := range rows {
					lo, hi = min(lo, f(r)), max(hi, f(r))
				}
				if v < lo-tol || v > hi+tol {
					t.Errorf("worker %q: %s shown as %q; /status within 1 s of that sample: [%g, %g]", pp.Worker, k, pp.Values[k], lo, hi)
				}
			}
			var reasons []string
			for _, r := range rows {
				if !slices.Contains(reasons, r.Reason) {
					reasons = append(reasons, r.Reason)
				}
			}
			if !slices.Contains(reasons, pp.Values["reason"]) {
				t.Errorf("worker %q: the pace shown as set by %q; /status within 1 s of that sample: %q", pp.Worker, pp.Values["reason"], reasons)
			}
			t.Logf("worker %q at %s: %v (charts %+v)", pp.Worker, at.Format("15:04:05.000"), pp.Values, pp.Charts)
		}
		return newest
	}
	// Three times, 2 s apart: the page moves on to newer samples.
	var last float64
	for range 3 {
		ts := checkPage(p.cmd.Process.Pid)
		if ts <= last {
			t.Errorf("the page shows the sample of %.3f, 2 s after showing %.3f: it does not update", ts, last)
		}
		last = ts
		time.Sleep(2 * time.Second)
	}
	if msgs, _ := consoleSince(0); len(msgs) > 0 {
		t.Errorf("console messages while the page ran: %v", msgs)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if *dashboardPNG != "" {
		if err := os.WriteFile(*dashboardPNG, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", *dashboardPNG)
	}

	// The worker restarts on the same address: the page says it lost the
	// process, then shows the new one, with fresh charts.
	_, mark := consoleSince(0)
	p.stop(20 * time.Second)
	run("wait for the page to notice", chromedp.Poll[chromedp.Void](`document.querySelector('#conn').classList.contains('down')`,
		chromedp.WithPollingTimeout(10*time.Second)))
	p = startRunOn(t, p.admin, dir, string(cfg))
	run("wait for the new process on the page", chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#process').textContent.includes('pid %d') &&
		document.querySelectorAll('section.panel').length == 2 &&
		[...document.querySelectorAll('section.panel .chart')].every((c) => Number(c.dataset.points || 0) >= 5)`, p.cmd.Process.Pid),
		chromedp.WithPollingTimeout(40*time.Second)))
	checkPage(p.cmd.Process.Pid)
	msgs, _ := consoleSince(mark)
	for _, m := range msgs {
		// While the process is down, the browser logs each failed poll.
		if m.Source == "network" && strings.Contains(m.URL, "/samples") {
			continue
		}
		t.Errorf("console message across the restart: %v", m)
	}
	t.Logf("%d console messages across the restart, all failed polls of /samples while the process was down", len(msgs))
	p.stop(20 * time.Second)
}

// evaluate returns the value of the JavaScript expression js in the page
// of ctx, or fails t.
func evaluate[T any](ctx context.Context, t *testing.T, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %.50q…: %v", js, err)
	}
	return v
}

// openBrowser starts a headless Chromium at path with a tab of 1400×1000
// that stops when the test ends, and returns the tab's context and a func
// that returns the console messages from the i-th on, with their count.
func openBrowser(t *testing.T, path string) (context.Context, func(i int) ([]chromedp.ConsoleMessage, int)) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1400, 1000),
		chromedp.Flag("hide-scrollbars", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)

	// Collect the console: calls of the console API, uncaught exceptions
	// and the browser's log (a failed load, a CSP violation).
	var (
		mu      sync.Mutex
		console []chromedp.ConsoleMessage
	)
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, m)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancelTab(); cancelAlloc(); <-done })
	return ctx, func(i int) ([]chromedp.ConsoleMessage, int) {
		mu.Lock()
		defer mu.Unlock()
		return append([]chromedp.ConsoleMessage(nil), console[i:]...), len(console)
	}
}

// runAction runs a in the tab of ctx within a minute, or fails t.
func runAction(ctx context.Context, t *testing.T, what string, a chromedp.Action[chromedp.Void]) {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(actx, a); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Issue 24 item 12: the page comes with the last samples, so the DOM
// right after load (a screenshot, a slow link, a printed page) shows every
// worker's panel with its points, not "Waiting for the first samples…",
// and before any request to /samples.
func TestDashboardShowsDataAtLoad(t *testing.T) {
	browser := chromium(t)
	t.Parallel()
	cfg, err := os.ReadFile("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := startRun(t, t.TempDir(), string(cfg))
	testenv.WaitFor(t, 20*time.Second, "3 samples of each worker", func() bool {
		resp, err := http.Get("http://" + p.admin + "/samples")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var s status.Samples
		if json.NewDecoder(resp.Body).Decode(&s) != nil || len(s.Workers) != 2 {
			return false
		}
		for _, w := range s.Workers {
			if len(w.T) < 3 {
				return false
			}
		}
		return true
	})
	ctx, _ := openBrowser(t, browser)
	runAction(ctx, t, "open the dashboard", chromedp.Navigate("http://"+p.admin+"/"))
	// At once: no wait for a poll.
	got := evaluate[struct {
		Waiting bool
		Fetched bool
		Panels  []pagePanel
		Conn    string
	}](ctx, t, `({ waiting: !!document.querySelector('#workers .empty'),
  fetched: performance.getEntriesByType('resource').some((e) => new URL(e.name).pathname === '/samples'),
  panels: `+readPanels+`, conn: document.querySelector('#conn').className })`)
	if got.Waiting || got.Fetched || len(got.Panels) != 2 || !strings.Contains(got.Conn, "live") {
		t.Fatalf("right after load: waiting %v, /samples fetched %v, %d panels, conn %q; want no waiting line, no fetch yet, 2 panels, live",
			got.Waiting, got.Fetched, len(got.Panels), got.Conn)
	}
	for _, pp := range got.Panels {
		if pp.Values["pace"] == "" || pp.Values["pace"] == "–" {
			t.Errorf("worker %q: pace tile %q right after load, want a number", pp.Worker, pp.Values["pace"])
		}
		for _, c := range pp.Charts {
			if c.Points < 3 || c.Ink < 50 {
				t.Errorf("worker %q, chart %q right after load: %d points, %d coloured pixels; want ≥ 3 and ≥ 50", pp.Worker, c.Title, c.Points, c.Ink)
			}
		}
	}
}

var fleetLine = regexp.MustCompile(`^fleet mail: (redis|fallback|rejoining), 1 process\(es\) share it; this one keeps to 20\.0/s if Redis is unreachable$`)

// A worker that uses a fleet has the fleet's share on its panel: a tile,
// a series, and a line that names the fleet's mode; the others do not.
func TestDashboardShowsAFleet(t *testing.T) {
	browser := chromium(t)
	t.Parallel()
	p := startRun(t, t.TempDir(), `
status_every = "0s"
[redis]
addr = "embedded"
[demo]
rate = 10
[fleet.mail]
rate = 40
expected_workers = 2
[[worker]]
name = "fleeted"
fleet = "mail"
[worker.source]
kind = "asynq"
queue = "fleeted"
[worker.sink]
kind = "log"
[[worker]]
name = "alone"
rate = 10
[worker.source]
kind = "asynq"
queue = "alone"
[worker.sink]
kind = "log"
`)
	ctx, consoleSince := openBrowser(t, browser)
	runAction(ctx, t, "open the dashboard", chromedp.Navigate("http://"+p.admin+"/"))
	runAction(ctx, t, "wait for points", chromedp.Poll[chromedp.Void](`document.querySelectorAll('section.panel').length == 2 &&
		[...document.querySelectorAll('section.panel .chart')].every((c) => Number(c.dataset.points || 0) >= 3)`,
		chromedp.WithPollingTimeout(40*time.Second)))
	type fleetView struct {
		Worker string   `json:"worker"`
		Tile   string   `json:"tile"`
		Line   string   `json:"line"`
		Legend []string `json:"legend"`
	}
	got := evaluate[[]fleetView](ctx, t, `[...document.querySelectorAll('section.panel')].map((p) => {
		const tile = p.querySelector('.tile[data-k="fleet_share"] .val b'), line = p.querySelector('.fleet');
		return { worker: p.dataset.worker, tile: tile ? tile.textContent : '', line: line ? line.textContent : '',
			legend: [...p.querySelectorAll('.chart')[0].querySelectorAll('.u-legend .u-label')].map((l) => l.textContent) };
	})`)
	if len(got) != 2 {
		t.Fatalf("%d panels, want 2: %+v", len(got), got)
	}
	f, a := got[0], got[1]
	// The mode is redis, or fallback while the embedded Redis answers
	// slowly on a busy machine.
	if f.Worker != "fleeted" || f.Tile != "20.0" || !fleetLine.MatchString(f.Line) || !slices.Contains(f.Legend, "Fleet share") {
		t.Errorf("the fleet's worker shows %+v; want a fleet share tile of 20.0 (40 ÷ expected_workers 2), a line naming mail and its mode, a Fleet share series", f)
	}
	if a.Worker != "alone" || a.Tile != "" || a.Line != "" || slices.Contains(a.Legend, "Fleet share") {
		t.Errorf("the worker without a fleet shows %+v; want no fleet tile, line or series", a)
	}
	if msgs, _ := consoleSince(0); len(msgs) > 0 {
		t.Errorf("console messages: %v", msgs)
	}
	p.stop(20 * time.Second)
}

// A downstream that takes 15 jobs/s and answers 429 beyond: the pacer
// cuts the pace and estimates the capacity; the page shows the estimate
// (as /status does, within a sample), draws its line, and says the pace
// is set by pushback.
func TestDashboardShowsCapacity(t *testing.T) {
	browser := chromium(t)
	t.Parallel()
	downstream := rate.NewLimiter(15, 3)
	srv, _ := httpSink(t, func(int) (int, string) {
		if downstream.Allow() {
			return http.StatusOK, ""
		}
		return http.StatusTooManyRequests, "1"
	})
	p := startRun(t, t.TempDir(), fmt.Sprintf(`
status_every = "0s"
[nats]
url = "embedded"
[demo]
rate = 50
[[worker]]
name = "hooks"
rate = 40
base = 40
[worker.source]
kind = "jetstream"
stream = "HOOKS"
subjects = ["hooks.>"]
[worker.sink]
kind = "http"
url = %q
`, srv.URL))
	statuses := recordStatus(t, p.admin)
	ctx, consoleSince := openBrowser(t, browser)
	runAction(ctx, t, "open the dashboard", chromedp.Navigate("http://"+p.admin+"/"))
	runAction(ctx, t, "wait for 8 capacity points", chromedp.Poll[chromedp.Void](
		`Number(document.querySelector('section.panel')?.dataset.capacityPoints || 0) >= 8`, chromedp.WithPollingTimeout(40*time.Second)))
	type view struct {
		T        float64 `json:"t"`
		Capacity string  `json:"capacity"`
		Reason   string  `json:"reason"`
		Points   int     `json:"points"`
		Legend   bool    `json:"legend"`
	}
	v := evaluate[view](ctx, t, `(() => { const p = document.querySelector('section.panel');
		return { t: Number(p.dataset.t), capacity: p.querySelector('.tile[data-k="capacity"] .val b').textContent,
			reason: p.querySelector('.sub [data-k="reason"]').textContent, points: Number(p.dataset.capacityPoints),
			legend: [...p.querySelectorAll('.chart')[0].querySelectorAll('.u-legend .u-label')].some((l) => l.textContent == 'Capacity') }; })()`)
	at := time.UnixMilli(int64(v.T * 1000))
	statuses.past(t, at.Add(time.Second))
	rows := statuses.worker("hooks", at.Add(-time.Second), at.Add(time.Second))
	got, tol, err := shown(v.Capacity)
	lo, hi := math.Inf(1), math.Inf(-1)
	var reasons []string
	for _, r := range rows {
		lo, hi = min(lo, r.Capacity), max(hi, r.Capacity)
		if !slices.Contains(reasons, r.Reason) {
			reasons = append(reasons, r.Reason)
		}
	}
	if err != nil || got <= 0 || got < lo-tol || got > hi+tol || len(rows) < 10 {
		t.Errorf("capacity shown as %q; /status within 1 s of that sample (%d answers): [%g, %g]", v.Capacity, len(rows), lo, hi)
	}
	if !slices.Contains(reasons, v.Reason) || !v.Legend {
		t.Errorf("the pace shown as set by %q (/status: %q), a Capacity series: %v", v.Reason, reasons, v.Legend)
	}
	t.Logf("capacity %s/s (downstream 15/s), pace set by %s, %d capacity points", v.Capacity, v.Reason, v.Points)
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		path := filepath.Join(t.ArtifactDir(), "capacity.png")
		if err := os.WriteFile(path, shot, 0o644); err == nil {
			t.Logf("screenshot: %s", path)
		}
	}
	if msgs, _ := consoleSince(0); len(msgs) > 0 {
		t.Errorf("console messages: %v", msgs)
	}
	p.stop(20 * time.Second)
}

// With latency_target = "auto" and a downstream that queues (2 servers ×
// 20ms behind the http sink, 100/s, with jobs arriving at 200/s), the
// dashboard shows the learned concurrency limit (a series beside in
// flight, and in the In flight tile) and the p90 latency with the no-load
// latency; the limit shown is about the 2 servers.
func TestDashboardShowsConcurrency(t *testing.T) {
	browser := chromium(t)
	t.Parallel()
	ds := &testenv.QueueingDownstream{Servers: 2, Service: 20 * time.Millisecond}
	srv, _ := httpSink(t, func(int) (int, string) {
		_ = ds.Call()
		return http.StatusOK, ""
	})
	p := startRun(t, t.TempDir(), fmt.Sprintf(`
status_every = "0s"
[nats]
url = "embedded"
[demo]
rate = 200
[[worker]]
name = "slow"
rate = 400
latency_target = "auto"
[worker.source]
kind = "jetstream"
stream = "SLOW"
subjects = ["slow.>"]
[worker.sink]
kind = "http"
url = %q
`, srv.URL))
	ctx, consoleSince := openBrowser(t, browser)
	runAction(ctx, t, "open the dashboard", chromedp.Navigate("http://"+p.admin+"/"))
	runAction(ctx, t, "wait for a p90 latency", chromedp.Poll[chromedp.Void](
		`(() => { const b = document.querySelector('section.panel .tile[data-k="latency_p90_ms"] .val b'); return b && b.textContent !== '–'; })()`,
		chromedp.WithPollingTimeout(40*time.Second)))
	type view struct {
		Limit  string `json:"limit"`
		P90    string `json:"p90"`
		Sub    string `json:"sub"`
		Legend bool   `json:"legend"`
	}
	v := evaluate[view](ctx, t, `(() => { const p = document.querySelector('section.panel');
		return { limit: p.querySelector('.tile[data-k="in_flight"] [data-k="concurrency_limit"]').textContent,
			p90: p.querySelector('.tile[data-k="latency_p90_ms"] .val b').textContent,
			sub: p.querySelector('.tile[data-k="latency_p90_ms"] .sub').textContent,
			legend: [...p.querySelectorAll('.chart')[1].querySelectorAll('.u-legend .u-label')].some((l) => l.textContent == 'Concurrency limit') }; })()`)
	t.Logf("dashboard: concurrency limit %s, p90 %s ms (%s), legend %v", v.Limit, v.P90, v.Sub, v.Legend)
	limit, err := strconv.Atoi(v.Limit)
	if err != nil || limit < 1 || limit > 8 || !v.Legend || !strings.Contains(v.Sub, "no-load") {
		t.Errorf("dashboard: limit %q, p90 %q, %q, legend %v; want a limit about the 2 servers (1–8), a no-load latency and the series", v.Limit, v.P90, v.Sub, v.Legend)
	}
	if msgs, _ := consoleSince(0); len(msgs) > 0 {
		t.Errorf("console messages: %v", msgs)
	}
	p.stop(20 * time.Second)
}
