package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// HTTPConfig configures an HTTP sink (kind "http" in config.toml).
type HTTPConfig struct {
	// URL receives one request per job. Required.
	URL string `toml:"url"`
	// Method is the request method. The default value is "POST".
	Method string `toml:"method"`
	// Timeout bounds a request, answer included; running past it is
	// pushback (a throttled outcome, retried after the worker's
	// default_retry_after): a downstream that does not answer in time is
	// drowning. The default value is 10s.
	Timeout time.Duration `toml:"timeout"`
	// ContentType is the payload's type. The default value is
	// "application/json".
	ContentType string `toml:"content_type"`
	// Headers are added to every request.
	Headers map[string]string `toml:"headers"`
	// ThrottleStatus are the answers that mean "slow down"; their
	// Retry-After header, whole seconds or an HTTP-date (RFC 9110), is the
	// pause, capped at MaxRetryAfter; without one, or with a malformed
	// one, the worker's default_retry_after is. The default value is
	// [429, 503].
	ThrottleStatus []int `toml:"throttle_status"`
	// RetryRedirects makes a 3xx answer an error that is retried. The
	// sink never follows a redirect: following one would turn a POST into
	// a GET without its body (302, 303) or send the payload and the
	// headers, credentials included, to another host (307, 308). A 3xx is
	// a failure that names its Location; it is permanent unless
	// RetryRedirects is set. The default value is false.
	RetryRedirects bool `toml:"retry_redirects"`
	// MaxRetryAfter caps the pause a Retry-After header asks for, so that
	// one answer cannot stall the worker for long: the pause holds every
	// job of the worker. The default value is 5m.
	MaxRetryAfter time.Duration `toml:"max_retry_after"`
	// Client sends the requests; the sink uses a copy of it that follows
	// no redirect. The default value is a client with Timeout whose
	// transport keeps up to DefaultMaxIdleConnsPerHost idle connections to
	// the endpoint (net/http's default keeps 2: at a thousand jobs a
	// second nearly every job would open a new connection). Not settable
	// from config.toml.
	Client *http.Client `toml:"-"`
}

// DefaultMaxIdleConnsPerHost is how many idle keep-alive connections the
// HTTP sink's default client keeps to its endpoint: enough for a worker
// with that many jobs in flight to reuse a connection for each.
const DefaultMaxIdleConnsPerHost = 256

// HTTP is a Sink that sends each job's payload to a URL, with the job's
// id, type and attempt in X-Pacer-Job-Id, X-Pacer-Job-Type and
// X-Pacer-Job-Attempt, and the id again in Idempotency-Key so that the
// downstream can drop a job delivered twice. A 2xx answer is success; a
// status in ThrottleStatus is a throttled outcome carrying its
// Retry-After. A downstream that is down or drowning is pushback too: a
// refused connection and a request that runs past Timeout (or any network
// timeout) are throttled outcomes without a Retry-After, so the pacer
// lowers the pace instead of spending attempts at full speed. Other 5xx,
// 408 and other transport errors are errors, retried; a 3xx is never
// followed (see RetryRedirects); other 4xx are permanent errors
// (ErrPermanent), and so is a job whose id or type cannot be sent in a
// header.
//
// The URL's password and query never appear in an error: they are shown
// as "xxxxx" and "?…".
//
// Every request the downstream receives is an attempt pacer counts:
// net/http never resends one by itself (it would, for a request with an
// Idempotency-Key, when a reused keep-alive connection closes without an
// answer); such a close is an error, retried as the source retries.
type HTTP struct {
	cfg   HTTPConfig
	shown string // cfg.URL without its password or query, for errors
}

var _ Sink = (*HTTP)(nil)

// NewHTTP returns an HTTP sink, or an error naming the bad setting.
func NewHTTP(c HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(c.URL)
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid("http", "url", fmt.Sprintf("%q", redactURL(c.URL)), "an http:// or https:// URL")
	}
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if _, err := http.NewRequest(c.Method, c.URL, nil); err != nil {
		return nil, invalid("http", "method", fmt.Sprintf("%q", c.Method), `an HTTP method (a token), such as "POST" or "PUT"`)
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Timeout < time.Millisecond {
		return nil, invalid("http", "timeout", c.Timeout, `a duration ≥ 1ms with a unit, such as "10s"`)
	}
	if c.ContentType == "" {
		c.ContentType = "application/json"
	}
	if !validHeaderValue(c.ContentType) {
		return nil, invalid("http", "content_type", fmt.Sprintf("%q", c.ContentType), "a header value without control characters")
	}
	for k, v := range c.Headers {
		if !validToken(k) {
			return nil, invalid("http", "headers", fmt.Sprintf("%q", k), "header names of letters, digits and !#$%&'*+-.^_`|~")
		}
		if !validHeaderValue(v) {
			// The value may be a secret: say where it is wrong, not what it is.
			return nil, invalid("http", fmt.Sprintf("headers.%s", k), "(a value of "+strconv.Itoa(len(v))+" bytes)", "a header value without control characters")
		}
	}
	if c.ThrottleStatus == nil {
		c.ThrottleStatus = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
	}
	for _, s := range c.ThrottleStatus {
		if s < 100 || s > 599 {
			return nil, invalid("http", "throttle_status", s, "HTTP status codes in [100, 599]")
		}
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = defaultMaxRetryAfter
	}
	if c.MaxRetryAfter < time.Millisecond {
		return nil, invalid("http", "max_retry_after", c.MaxRetryAfter, `a duration ≥ 1ms with a unit, such as "5m"`)
	}
	if c.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 0 // no cap over all hosts
		t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
		c.Client = &http.Client{Timeout: c.Timeout, Transport: t}
	}
	cl := *c.Client
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Client = &cl
	return &HTTP{cfg: c, shown: redactURL(c.URL)}, nil
}

// redactURL returns raw with its password shown as "xxxxx" and its query
// as "?…": both often hold credentials.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	q := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	s := u.Redacted()
	if q {
		s += "?…"
	}
	return s
}

// headerSafe reports whether s can be sent as a header value.
func headerSafe(s string) bool { return validHeaderValue(s) }

// Handle sends j and reads the answer.
func (h *HTTP) Handle(ctx context.Context, j Job) error {
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	if !headerSafe(j.ID) || !headerSafe(j.Type) {
		// CR, LF or NUL in an id or type: no retry can send it.
		return permanent(fmt.Errorf("sink: http: job %q of type %q: a control character cannot be sent in a header", j.ID, j.Type))
	}
	req, err := http.NewRequestWithContext(ctx, h.cfg.Method, h.cfg.URL, bytes.NewReader(j.Payload))
	if err != nil {
		return permanent(fmt.Errorf("sink: http: %s %s: cannot build the request", h.cfg.Method, h.shown))
	}
	// No GetBody: net/http then never sends the request again by itself.
	// With a GetBody and the Idempotency-Key header below, it takes a POST
	// as replayable (Request.isReplayable) and resends it on a new
	// connection when a reused one closes without an answer: a second
	// delivery of the same attempt that pacer never counted. Without one,
	// that is an error, an attempt counted and retried by the source. A
	// request never written is still sent on another connection only if
	// it has no body; the sink follows no redirect, which needs GetBody.
	req.GetBody = nil
	req.Header.Set("Content-Type", h.cfg.ContentType)
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Pacer-Job-Id", j.ID)
	req.Header.Set("X-Pacer-Job-Type", j.Type)
	req.Header.Set("X-Pacer-Job-Attempt", strconv.Itoa(j.Attempt))
	if j.ID != "" {
		req.Header.Set("Idempotency-Key", j.ID)
	}
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = h.shown // net/http hides the password but not the query
		}
		err = fmt.Errorf("sink: http: job %s: %w", j.ID, err)
		if pacer.Unavailable(err) && outer.Err() == nil {
			return pacer.Throttle(0, err)
		}
		return err
	}
	if rem, reset, ok := RateLimitAdvice(resp.Header, time.Now()); ok {
		Advise(outer, rem, reset) // what the downstream says is left
	}
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		// The body of a success is never shown: drain it, through
		// io.Discard's pooled buffer, without a copy of its start.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
		resp.Body.Close()
		return nil
	}
	return h.failure(j, resp)
}

// failure returns the outcome of an answer other than a success, whose
// body it reads (the start of it, for the error) and closes: a throttle
// for a ThrottleStatus, with its Retry-After; a permanent error for a
// redirect (unless RetryRedirects) or a 4xx; an error to retry for a 5xx
// or a 408.
func (h *HTTP) failure(j Job, resp *http.Response) error {
	code := resp.StatusCode
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	resp.Body.Close()
	if slices.Contains(h.cfg.ThrottleStatus, code) {
		v := resp.Header.Get("Retry-After")
		d, note := capRetryAfter(RetryAfter(v, time.Now()), h.cfg.MaxRetryAfter, v)
		return pacer.Throttle(d, fmt.Errorf("sink: http: job %s: %s %s: %s%s%s", j.ID, h.cfg.Method, h.shown, resp.Status, note, bodySuffix(body)))
	}
	if code >= 300 && code < 400 {
		loc := "no Location"
		if l := resp.Header.Get("Location"); l != "" {
			loc = "Location " + redactURL(l)
		}
		cause := fmt.Errorf("sink: http: job %s: %s %s: %s to %s: redirects are not followed (set url to the final address)", j.ID, h.cfg.Method, h.shown, resp.Status, loc)
		if h.cfg.RetryRedirects {
			return cause
		}
		return permanent(cause)
	}
	cause := fmt.Errorf("sink: http: job %s: %s %s: %s%s", j.ID, h.cfg.Method, h.shown, resp.Status, bodySuffix(body))
	switch {
	case code >= 500 || code == http.StatusRequestTimeout:
		return cause
	default:
		return permanent(cause)
	}
}

// RetryAfter parses an HTTP Retry-After value at time now, as RFC 9110
// (section 10.2.3) defines it: a non-negative whole number of seconds or
// an HTTP-date. It returns 0 if v is empty or malformed (fractions, signs,
// exponents, "Inf" and "NaN" included) or a date not after now. A value
// too large for a time.Duration saturates at the largest one: callers cap
// the pause.
func RetryAfter(v string, now time.Time) time.Duration {
	d, _ := parseRetryAfter(v, now)
	return d
}

// parseRetryAfter is RetryAfter with ok false when v is malformed.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" { // delay-seconds = 1*DIGIT
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil || s > math.MaxInt64/uint64(time.Second) {
			return math.MaxInt64, true // only overflow fails once v is all digits
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true // Sub saturates
	}
	return 0, false
}

// validToken reports whether s is an RFC 9110 token, as header names are.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s holds no control characters but
// horizontal tab, as net/http requires of the header values it sends.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func bodySuffix(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return ": " + string(b)
}
