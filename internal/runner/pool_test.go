package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/internal/testenv"
	"github.com/jobpacer/pacer/pacer"
)

// holder is a source that asks its pacer for MaxInFlight+1 permits held
// at once, never Done, and reports how many it was granted.
type holder struct{ got chan int }

func (h *holder) Connect(context.Context) (pacer.Probe, error) { return nil, nil }

func (h *holder) Run(ctx context.Context, env plugin.Env) error {
	n := 0
	for range env.MaxInFlight + 1 {
		// Once an in-flight cap of the pacer is full it stays so, as no
		// permit is ever Done: the Acquire waits until its context ends.
		actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		if _, err := env.Pacer.Acquire(actx, 1); err == nil {
			n++
		}
		cancel()
	}
	h.got <- n
	<-ctx.Done()
	return nil
}

// pooled is a holder that runs its own pool of MaxInFlight handlers.
type pooled struct{ holder }

func (*pooled) PoolsHandlers() {}

var holders sync.Map // worker name → chan int

func init() {
	for _, kind := range []string{"holder", "pooled"} {
		plugin.RegisterSource(kind, func(o plugin.Options) (plugin.Source, error) {
			h := holder{got: make(chan int, 1)}
			holders.Store(o.WorkerName(), h.got)
			if kind == "pooled" {
				return &pooled{h}, o.Decode(&struct{}{})
			}
			return &h, o.Decode(&struct{}{})
		})
	}
}

// A source that pools its handlers (plugin.HandlerPool, the jetstream
// source) enforces max_in_flight itself, on jobs running: its pacer has
// no in-flight cap, so the permits it takes for jobs still being fetched
// do not count against it; with latency_target the pacer keeps the cap.
// Any other source's pacer holds max_in_flight permits at most.
func TestHandlerPoolLeavesTheCapOutOfThePacer(t *testing.T) {
	for _, tt := range []struct {
		kind, extra string
		uncapped    bool
	}{
		{"pooled", "", true},
		{"pooled", "latency_target = \"1s\"\n", false},
		{"holder", "", false},
	} {
		t.Run(tt.kind+tt.extra, func(t *testing.T) {
			name := testenv.UniqueName(t)
			path := filepath.Join(t.TempDir(), "config.toml")
			cfg := fmt.Sprintf("admin = \"\"\nstatus_every = \"0s\"\n[[worker]]\nname = %q\nrate = 1000000\nmax_in_flight = 2\n%s"+
				"[worker.source]\nkind = %q\n[worker.sink]\nkind = \"count\"\n", name, tt.extra, tt.kind)
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			startRunner(t, path)
			v, _ := holders.Load(name)
			got := <-v.(chan int)
			if tt.uncapped && got != 3 || !tt.uncapped && got > 2 {
				t.Errorf("%s source, max_in_flight = 2 %s: %d of 3 permits held at once granted, want uncapped %v", tt.kind, tt.extra, got, tt.uncapped)
			}
		})
	}
}
