// Package admin serves a run's admin address: /metrics in the Prometheus
// text format, /status as JSON, /healthz (the process serves) and /readyz
// (every worker runs and the run is not draining), with timeouts and a
// cap on open connections (Serve); and a dashboard, read-only: the page at
// / (embedded, with uPlot vendored under dashboard/) draws every worker's
// last 5 minutes from /samples, a sample a second kept by the runner.
package admin
