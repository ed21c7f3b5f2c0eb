package admin

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"strconv"
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
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		http.ServeFileFS(w, r, assets, "index.html")
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

func setHeaders(w http.ResponseWriter) {
	for k, v := range pageHeaders {
		w.Header().Set(k, v)
	}
}
