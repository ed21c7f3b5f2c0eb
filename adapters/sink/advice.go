package sink

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// An Advisor takes what a downstream advertises with an answer: remaining
// calls are left until its window resets, reset from now.
// pacer.Pacer.Advise is one.
type Advisor func(remaining int, reset time.Duration)

type advisorKey struct{}

// WithAdvisor returns a context whose sinks report what their downstream
// advertises to a (the http sink reads the rate-limit headers). pacer run
// gives each worker's sink its pacer's Advise.
func WithAdvisor(ctx context.Context, a Advisor) context.Context {
	return context.WithValue(ctx, advisorKey{}, a)
}

// Advise reports remaining and reset to the Advisor of ctx, if any.
func Advise(ctx context.Context, remaining int, reset time.Duration) {
	if a, ok := ctx.Value(advisorKey{}).(Advisor); ok && a != nil {
		a(remaining, reset)
	}
}

// RateLimitAdvice reads what an answer's headers advertise at time now:
// the calls remaining and the time until the window resets. It reads, the
// first that is there:
//   - RateLimit (draft-ietf-httpapi-ratelimit-headers), either
//     "limit=100, remaining=50, reset=30" or the structured form
//     `"default";r=50;t=30`;
//   - RateLimit-Remaining and RateLimit-Reset (seconds);
//   - X-RateLimit-Remaining and X-RateLimit-Reset: seconds from now, or,
//     above 10⁹, a Unix time in seconds (GitHub's form).
//
// ok is false when none is there, or one is malformed (a negative or
// fractional remaining, a reset that is not a number ≥ 0).
func RateLimitAdvice(h http.Header, now time.Time) (remaining int, reset time.Duration, ok bool) {
	if v := h.Get("RateLimit"); v != "" {
		return structured(v)
	}
	for _, prefix := range []string{"RateLimit-", "X-RateLimit-"} {
		r, t := h.Get(prefix+"Remaining"), h.Get(prefix+"Reset")
		if r == "" || t == "" {
			continue
		}
		rem, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rem < 0 {
			return 0, 0, false
		}
		secs, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil || secs < 0 || math.IsInf(secs, 0) || math.IsNaN(secs) {
			return 0, 0, false
		}
		if secs > 1e9 { // a Unix time
			d := time.Unix(int64(secs), 0).Sub(now)
			return rem, max(d, 0), d > 0
		}
		return rem, time.Duration(secs * float64(time.Second)), secs > 0
	}
	return 0, 0, false
}

// structured parses a RateLimit header's remaining and reset, in the
// draft's older list form or its structured-field form.
func structured(v string) (remaining int, reset time.Duration, ok bool) {
	rem, secs := -1, -1.0
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
		k, val, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "remaining", "r":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 0 {
				return 0, 0, false
			}
			rem = n
		case "reset", "t":
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				return 0, 0, false
			}
			secs = f
		}
	}
	if rem < 0 || secs <= 0 {
		return 0, 0, false
	}
	return rem, time.Duration(secs * float64(time.Second)), true
}
