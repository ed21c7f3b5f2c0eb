// Package bench measures pacer beside its peers in one run: the fast path
// against golang.org/x/time/rate and go.uber.org/ratelimit (go test -bench
// . ./bench/), precision at high rates (go run ./bench/precision), and
// finding a downstream's capacity beside the AWS SDK Go v2's adaptive
// retry mode and a static limit (go run ./bench/capacity).
// It is the only place pacer's core meets those libraries: pacer/ imports
// the standard library alone.
package bench
