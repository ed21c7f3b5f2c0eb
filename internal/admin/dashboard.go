package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jobpacer/pacer/internal/status"
)

// The dashboard: index.html, app.js and app.css, written for pacer, and
// uPlot 1.6.32 (npm package uplot, MIT licence in uPlot.LICENSE), vendored
// as published. Nothing is fetched from elsewhere at run time.
//
//go:embed dashboard
var dashboardFiles embed.FS

// pageHeaders are set on every dashboard response: the page runs only
// its own scripts, talks only to this server and cannot be framed.
var pageHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache",
}

// routeDashboard adds the dashboard page (/), its assets (/dashboard/…)
// and its data (/samples) to mux.
func routeDashboard(mux *http.ServeMux, samples func(since time.Time) status.Samples) {
	assets, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/dashboard/", http.FileServerFS(assets))
	page, err := fs.ReadFile(assets, "index.html")
	if err != nil || !bytes.Contains(page, []byte(firstSamples)) {
		panic("admin: dashboard/index.html has no " + firstSamples) // fixed at build time
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(withSamples(page, samples(time.Time{})))
	})
	mux.HandleFunc("GET /dashboard/{file}", func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /samples", func(w http.ResponseWriter, r *http.Request) {
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				http.Error(w, fmt.Sprintf("admin: since: %q is not a time in Unix seconds (such as 1767225600.5)", v), http.StatusBadRequest)
				return
			}
			since = time.UnixMilli(int64(math.Round(f * 1000)))
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(samples(since))
	})
}

// firstSamples is the empty data block of index.html that the page is
// served with the last samples in (what /samples answers), so that its
// first paint, a screenshot or a printed page shows them, not "Waiting
// for the first samples". app.js draws them before it polls.
const firstSamples = `<script type="application/json" id="first-samples"></script>`

// withSamples returns page with s in its firstSamples block. JSON escapes
// <, > and &: the data cannot end the block.
func withSamples(page []byte, s status.Samples) []byte {
	data, err := json.Marshal(s)
	if err != nil {
		return page // app.js polls /samples
	}
	block := append([]byte(strings.TrimSuffix(firstSamples, "</script>")), data...)
	return bytes.Replace(page, []byte(firstSamples), append(block, "</script>"...), 1)
}

func setHeaders(w http.ResponseWriter) {
	for k, v := range pageHeaders {
		w.Header().Set(k, v)
	}
}
