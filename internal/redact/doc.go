// Package redact is the one place pacer makes text that may hold a
// secret safe to show. Every log line, status, error, /status, /samples,
// /metrics and dashboard field that names a broker takes its address
// through URL (which hides the user part of every address form that
// nats.go and go-redis accept, without parsing it), its nkey through
// NKey, and its errors through Error (which never repeats the input that a
// url.Parse error quotes). Secrets then replaces the config's secret
// values in whatever still goes out: pacer run's log handler, its fatal
// error, the errors of /status and the output of pacer check.
package redact
