// Package admin serves a run's admin address: /metrics in the Prometheus
// text format and /status as JSON.
package admin
