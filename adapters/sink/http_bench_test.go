package sink_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jobpacer/pacer/adapters/sink"
)

// BenchmarkHTTPHandle sends one job a time to a local server that
// answers 200 with a short body: the sink's cost per job, allocations
// included, beside net/http's own.
func BenchmarkHTTPHandle(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	h, err := sink.NewHTTP(sink.HTTPConfig{URL: srv.URL + "/jobs"})
	if err != nil {
		b.Fatal(err)
	}
	j := sink.Job{ID: "job-1", Type: "email", Attempt: 1, Payload: []byte(`{"to":"someone@example.com"}`)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Handle(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
}
