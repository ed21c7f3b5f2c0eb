// Package admin serves a run's admin address: /metrics in the Prometheus
// text format, /status as JSON, /healthz (the process serves) and /readyz
// (every worker runs and the run is not draining), with timeouts and a
// cap on open connections (Serve).
package admin
