package runner

import (
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/pacer"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns a sample at t0 + i seconds whose counters grow by 10
// dispatched, 8 done and 2 throttled a second.
func at(i int) sample {
	n := uint64(i)
	return sample{at: t0.Add(time.Duration(i) * time.Second), st: pacer.Stats{
		Pace: 10, Dispatched: 10 * n, Succeeded: 7 * n, Failed: n, Throttled: 2 * n, Backlog: pacer.Backlog{Pending: int64(i)},
	}}
}

func TestHistoryKeepsTheLastFiveMinutes(t *testing.T) {
	t.Parallel()
	h := &history{start: t0}
	if got, _, ok := h.after(time.Time{}); len(got) != 0 || ok {
		t.Fatalf("empty history: after(zero) = %d samples, ok %v; want none, false", len(got), ok)
	}
	if got := h.measured(); got != 0 {
		t.Errorf("measured() with no sample = %v, want 0", got)
	}
	const n = historyLen + 25
	for i := 1; i <= n; i++ {
		h.add(at(i))
	}
	all, last, ok := h.after(time.Time{})
	if len(all) != historyLen || !ok {
		t.Fatalf("after %d samples: after(zero) = %d samples, ok %v; want %d, true", n, len(all), ok, historyLen)
	}
	if got, want := all[0].at, at(n-historyLen+1).at; !got.Equal(want) {
		t.Errorf("oldest sample at %v, want %v (the %d before it dropped)", got, want, n-historyLen)
	}
	for i := 1; i < len(all); i++ {
		if !all[i].at.After(all[i-1].at) {
			t.Fatalf("samples out of order at %d: %v after %v", i, all[i].at, all[i-1].at)
		}
	}
	if got, want := last.at, at(n).at; !got.Equal(want) {
		t.Errorf("last sample at %v, want %v", got, want)
	}
	if s := all[len(all)-1]; s.done != 7 || s.throttled != 2 {
		t.Errorf("last sample: done/s %v, throttled/s %v; want 7 (succeeded), 2", s.done, s.throttled)
	}
	if got := h.measured(); got != 7 {
		t.Errorf("measured() = %v, want 7 (done, that is succeeded, per second: the DONE/s of status)", got)
	}

	newer, last2, _ := h.after(at(n - 3).at)
	if len(newer) != 3 || !newer[0].at.Equal(at(n-2).at) || !last2.at.Equal(last.at) {
		t.Errorf("after(sample %d) = %d samples from %v, want 3 from %v", n-3, len(newer), newer[0].at, at(n-2).at)
	}
	if none, last3, ok := h.after(last.at); len(none) != 0 || !ok || !last3.at.Equal(last.at) {
		t.Errorf("after(the last sample) = %d samples, last %v, %v; want none, the last sample, true", len(none), last3.at, ok)
	}
}

// The first sample's rates count from the start of the history; a sample
// at the same instant as the one before has rates 0, not a division by 0.
func TestHistoryRates(t *testing.T) {
	t.Parallel()
	h := &history{start: t0}
	h.add(at(2)) // 2 s after the start: 14 done, 4 throttled
	h.add(at(2))
	all, _, _ := h.after(time.Time{})
	if all[0].done != 7 || all[0].throttled != 2 {
		t.Errorf("first sample: done/s %v, throttled/s %v; want 7, 2 (counted from the start)", all[0].done, all[0].throttled)
	}
	if all[1].done != 0 || all[1].throttled != 0 {
		t.Errorf("sample at the same instant: done/s %v, throttled/s %v; want 0, 0", all[1].done, all[1].throttled)
	}
	// /samples says times to the millisecond: a sample within the
	// millisecond of since is not after it.
	h3 := &history{start: t0}
	h3.add(sample{at: t0.Add(1500 * time.Microsecond)})
	if got, _, _ := h3.after(t0.Add(time.Millisecond)); len(got) != 0 {
		t.Errorf("after(t0+1ms) = %v, want none: the sample at t0+1.5ms is in that millisecond", got[0].at)
	}
	if got, _, _ := h3.after(t0); len(got) != 1 {
		t.Errorf("after(t0) = %d samples, want the one at t0+1.5ms", len(got))
	}

	h2 := &history{start: t0}
	h2.add(at(1))
	if got := h2.measured(); got != 0 {
		t.Errorf("measured() with one sample = %v, want 0", got)
	}
	h2.add(at(3))
	if got := h2.measured(); got != 7 {
		t.Errorf("measured() over 2 s = %v, want 7", got)
	}
}

// BenchmarkSamples is the work of one /samples request of an open page for
// a worker: the samples since the last request (one) or, on the first
// request, all of them; built and encoded as the admin server does.
func BenchmarkSamples(b *testing.B) {
	w := &runWorker{cfg: config.Worker{Name: "w", Source: &config.Plugin{}, Sink: &config.Plugin{}}}
	w.hist.start = t0
	for i := 1; i <= historyLen; i++ {
		w.hist.add(at(i))
	}
	for _, bc := range []struct {
		name  string
		since time.Time
	}{{"new", at(historyLen - 1).at}, {"all", time.Time{}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := json.NewEncoder(io.Discard).Encode(w.samples(bc.since)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTake is the sampler's work for a worker, once a second.
func BenchmarkTake(b *testing.B) {
	p, err := pacer.New(pacer.Config{Rate: 100})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	w := &runWorker{p: p}
	now := t0
	for b.Loop() {
		now = now.Add(time.Second)
		w.hist.add(w.take(now))
	}
}
