// Package bench measures pacer beside its peers in one run: the fast path
// against golang.org/x/time/rate and go.uber.org/ratelimit (go test -bench
// . ./bench/), and precision at high rates (go run ./bench/precision).
// It is the only place pacer's core meets those libraries: pacer/ imports
// the standard library alone.
package bench
