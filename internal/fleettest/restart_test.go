package fleettest

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/internal/testenv"
)

// checkBins fails t if any bin of the fleet passed more than the
// documented bound for a window w: 2 × burst + rate × (w + lease_time +
// 2ε), with burst 1, lease_time 100ms and ε taken as 1ms.
func checkBins(t *testing.T, r *fleetRun, rate float64) {
	t.Helper()
	bound := 2 + rate*(r.bin.Seconds()+0.1+0.002)
	for i := range len(r.ms[0].bins) - 1 {
		if got := float64(r.total(i, i+1)); got > bound {
			t.Errorf("bin %d (%v from the start): the fleet passed %.0f, want ≤ %.0f (2 × burst + rate × (w + lease_time + 2ε))", i, time.Duration(i)*r.bin, got, bound)
		}
	}
}

// A nats-server stopped for 2.5 s under a fleet of three at 300/s: each
// member falls back to its share (100/s), the fleet stays within its
// rate in every half second, and every member rejoins once it is back.
func TestNATSFleetSurvivesServerRestart(t *testing.T) {
	srv := testenv.NATSEmbedded(t)
	js := testenv.JetStream(t, srv.URL())
	name := "restart"
	if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: name, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	const rate, n = 300.0, 3
	bin := 500 * time.Millisecond
	logs := &testenv.SyncBuffer{}
	r := runFleet(t, []string{srv.URL()}, name, n, rate, 8*time.Second, bin, slog.New(slog.NewTextHandler(logs, nil)))
	time.Sleep(time.Until(r.start.Add(2 * time.Second)))
	srv.Stop()
	time.Sleep(time.Until(r.start.Add(4500 * time.Millisecond)))
	srv.Start()
	r.wait()
	t.Logf("fleet per bin: %v", func() (out []int64) {
		for i := range len(r.ms[0].bins) - 1 {
			out = append(out, r.total(i, i+1))
		}
		return out
	}())
	checkBins(t, r, rate)
	for i, m := range r.ms {
		s := m.b.Stats()
		out := r.of(i, 5, 9) // 2.5–4.5 s: down
		t.Logf("member %d: %d in the outage's 2 s; %+v", i, out, s)
		if s.Fallbacks < 1 || s.Rejoins < 1 || s.Mode != natsbucket.ModeNATS {
			t.Errorf("member %d: %d fallbacks, %d rejoins, mode %v at the end; want ≥ 1, ≥ 1, nats", i, s.Fallbacks, s.Rejoins, s.Mode)
		}
		if share := rate / n * 2; float64(out) > share*1.05+2 || float64(out) < share*0.9 {
			t.Errorf("member %d passed %d in 2 s of outage, want its share %.0f (−10 %%, +5 %%)", i, out, share)
		}
	}
	// Below the rate: the calls that time out (200ms each) when the
	// server goes, and while its JetStream recovers the bucket's stream
	// after the restart (calls fail again, each a stall of up to the
	// timeout; seen from 0 to 0.35 of a second's worth on a loaded machine).
	if got, want := float64(r.total(0, 16)), rate*8; got < want*0.8 || got > want*1.02+3 {
		t.Errorf("fleet passed %.0f in 8 s at %g/s, want %.0f (−20 %%, +2 %%)", got, rate, want)
	}
	// After the restart the fleet runs at its rate again (that every
	// member rejoined is the Mode check above). On a loaded machine one
	// lease call may stall up to its 200ms timeout: 559 of 600 was seen
	// under a CI run beside two other builds.
	if after := float64(r.total(12, 16)); after < rate*2*0.85 {
		t.Errorf("fleet passed %.0f in the last 2 s, want ≥ 85 %% of %.0f (running again)", after, rate*2)
	}
}

// A 3-server NATS cluster holding the fleet's key-value bucket with 3
// replicas loses a server (SIGKILL) under a fleet of three at 300/s, one
// member connected to each server: the fleet stays within its rate in
// every half second, and goes on at its rate on the two servers left.
//
// The servers are the nats-server of go.mod, built for the test: with
// nats-server 2.9.10 this test failed, the fleet passing 200 in a half
// second at 300/s after the stream leader was killed (two leases granted
// on one revision).
func TestNATSClusterLosesAServer(t *testing.T) {
	natsServerOfGoMod(t)
	procs := testenv.NATSCluster(t, 3)
	var urls []string
	for _, p := range procs {
		urls = append(urls, "nats://"+p.Addr())
	}
	js := testenv.JetStream(t, urls[0])
	name := "cluster"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	const rate, n = 300.0, 3
	bin := 500 * time.Millisecond
	logs := &testenv.SyncBuffer{}
	r := runFleet(t, urls, name, n, rate, 8*time.Second, bin, slog.New(slog.NewTextHandler(logs, nil)))
	time.Sleep(time.Until(r.start.Add(2 * time.Second)))
	procs[0].Kill()
	r.wait()
	t.Logf("fleet per bin: %v", func() (out []int64) {
		for i := range len(r.ms[0].bins) - 1 {
			out = append(out, r.total(i, i+1))
		}
		return out
	}())
	checkBins(t, r, rate)
	for i, m := range r.ms {
		t.Logf("member %d: %+v", i, m.b.Stats())
	}
	if got, want := float64(r.total(0, 16)), rate*8; got < want*0.85 || got > want*1.02+3 {
		t.Errorf("fleet passed %.0f in 8 s at %g/s, want %.0f (−15 %%, +2 %%)", got, rate, want)
	}
	if after := float64(r.total(10, 16)); after < rate*3*0.85 { // a lease call may stall its timeout on a loaded machine
		t.Errorf("fleet passed %.0f in the last 3 s on two servers, want ≥ 85 %% of %.0f\n%s", after, rate*3, logs)
	}
}

// natsServerOfGoMod builds the nats-server of go.mod and puts it first in
// PATH for t, so that testenv.NATSCluster starts it rather than whatever
// nats-server the machine has.
func natsServerOfGoMod(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}
