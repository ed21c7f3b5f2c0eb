package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// HTTPConfig configures an HTTP sink (kind "http" in config.toml).
type HTTPConfig struct {
	// URL receives one request per job. Required.
	URL string `toml:"url"`
	// Method is the request method. The default value is "POST".
	Method string `toml:"method"`
	// Timeout bounds a request, answer included; running past it is an
	// error, retried. The default value is 10s.
	Timeout time.Duration `toml:"timeout"`
	// ContentType is the payload's type. The default value is
	// "application/json".
	ContentType string `toml:"content_type"`
	// Headers are added to every request.
	Headers map[string]string `toml:"headers"`
	// ThrottleStatus are the answers that mean "slow down"; their
	// Retry-After header (seconds or a date) is the pause. The default
	// value is [429, 503].
	ThrottleStatus []int `toml:"throttle_status"`
	// Client sends the requests. The default value is a client with
	// Timeout. Not settable from config.toml.
	Client *http.Client `toml:"-"`
}

// HTTP is a Sink that sends each job's payload to a URL, with the job's
// id, type and attempt in X-Pacer-Job-Id, X-Pacer-Job-Type and
// X-Pacer-Job-Attempt. A 2xx answer is success; a status in
// ThrottleStatus is a throttled outcome carrying its Retry-After; other
// 5xx, 408 and transport errors (timeouts included) are errors, retried;
// other 4xx are permanent errors (ErrPermanent).
type HTTP struct {
	cfg HTTPConfig
}

var _ Sink = (*HTTP)(nil)

// NewHTTP returns an HTTP sink, or an error naming the bad setting.
func NewHTTP(c HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(c.URL)
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid("http", "url", fmt.Sprintf("%q", c.URL), "an http:// or https:// URL")
	}
	if c.Method == "" {
		c.Method = http.MethodPost
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
	if c.ThrottleStatus == nil {
		c.ThrottleStatus = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
	}
	for _, s := range c.ThrottleStatus {
		if s < 100 || s > 599 {
			return nil, invalid("http", "throttle_status", s, "HTTP status codes in [100, 599]")
		}
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: c.Timeout}
	}
	return &HTTP{cfg: c}, nil
}

// Handle sends j and reads the answer.
func (h *HTTP) Handle(ctx context.Context, j Job) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, h.cfg.Method, h.cfg.URL, bytes.NewReader(j.Payload))
	if err != nil {
		return permanent(fmt.Errorf("sink: http: %w", err))
	}
	req.Header.Set("Content-Type", h.cfg.ContentType)
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Pacer-Job-Id", j.ID)
	req.Header.Set("X-Pacer-Job-Type", j.Type)
	req.Header.Set("X-Pacer-Job-Attempt", strconv.Itoa(j.Attempt))
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("sink: http: job %s: %w", j.ID, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	resp.Body.Close()
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	cause := fmt.Errorf("sink: http: job %s: %s %s: %s%s", j.ID, h.cfg.Method, h.cfg.URL, resp.Status, bodySuffix(body))
	switch {
	case slices.Contains(h.cfg.ThrottleStatus, code):
		return pacer.Throttle(RetryAfter(resp.Header.Get("Retry-After"), time.Now()), cause)
	case code >= 500 || code == http.StatusRequestTimeout:
		return cause
	default:
		return permanent(cause)
	}
}

// RetryAfter parses an HTTP Retry-After value, a number of seconds or a
// date, at time now; it returns 0 if v is empty or malformed.
func RetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

func bodySuffix(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return ": " + string(b)
}
