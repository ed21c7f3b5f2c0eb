package runner

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/status"
)

// Samples returns what /samples serves: the process, its brokers and the
// samples of every worker taken after since. It is safe for concurrent
// use.
func (r *Runner) Samples(since time.Time) status.Samples {
	s := status.Samples{
		Process: processInfo(),
		Every:   sampleEvery.Seconds(), Window: (historyLen * sampleEvery).Seconds(),
		Workers: []status.WorkerSamples{},
	}
	s.Process.Started, s.Process.Uptime, s.Process.Draining = r.started, time.Since(r.started).Seconds(), r.draining.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	s.Brokers = brokerList(r.cfg, r.brokers)
	for _, w := range r.workers {
		s.Workers = append(s.Workers, w.samples(since))
	}
	return s
}

func (w *runWorker) samples(since time.Time) status.WorkerSamples {
	out, last, ok := w.hist.after(since)
	ws := status.WorkerSamples{Name: w.cfg.Name, Source: w.cfg.Source.Kind(), Sink: w.cfg.Sink.Kind(),
		Fleet: w.cfg.Fleet, MaxInFlight: w.cfg.MaxInFlight}
	n := len(out)
	col := func() []float64 { return make([]float64, 0, n) }
	ws.T, ws.Pace, ws.Ceiling, ws.Done, ws.Throttled = col(), col(), col(), col(), col()
	ws.Backlog, ws.Factor, ws.InFlight, ws.Paused, ws.Capacity = col(), col(), col(), col(), col()
	if w.fleet != nil {
		ws.FleetShare = col()
	}
	conc := w.cfg.Settings.LatencyTarget != 0
	if conc {
		ws.ConcurrencyLimit, ws.LatencyP90 = col(), col()
	}
	for _, s := range out {
		paused := 0.0
		if !s.st.PausedUntil.IsZero() {
			paused = 1
		}
		ws.T = append(ws.T, unix(s.at))
		ws.Pace = append(ws.Pace, s.st.Pace)
		ws.Ceiling = append(ws.Ceiling, s.st.Ceiling)
		ws.Done = append(ws.Done, milli(s.done))
		ws.Throttled = append(ws.Throttled, milli(s.throttled))
		ws.Backlog = append(ws.Backlog, float64(s.st.Backlog.Pending))
		ws.Factor = append(ws.Factor, s.st.Factor)
		ws.InFlight = append(ws.InFlight, float64(s.st.InFlight))
		ws.Paused = append(ws.Paused, paused)
		ws.Capacity = append(ws.Capacity, milli(s.st.Capacity))
		if w.fleet != nil {
			ws.FleetShare = append(ws.FleetShare, s.fleetShare)
		}
		if conc {
			ws.ConcurrencyLimit = append(ws.ConcurrencyLimit, float64(s.st.ConcurrencyLimit))
			ws.LatencyP90 = append(ws.LatencyP90, ms(s.st.LatencyP90))
		}
	}
	if ok {
		st := last.st
		ws.Last = &status.WorkerLast{T: unix(last.at), Dispatched: st.Dispatched, Succeeded: st.Succeeded,
			Failed: st.Failed, Throttled: st.Throttled, Pauses: st.Pauses, Cuts: st.Cuts, Reason: string(st.Reason),
			FleetMode: last.fleetMode, FleetProcesses: last.fleetProcs,
			LatencyNoLoad: ms(st.LatencyNoLoad), ConcurrencyCuts: st.ConcurrencyCuts}
		if !st.PausedUntil.IsZero() {
			t := st.PausedUntil
			ws.Last.PausedUntil = &t
		}
	}
	return ws
}

// take returns w's state at now, for its history.
func (w *runWorker) take(now time.Time) sample {
	s := sample{at: now, st: w.p.Stats()}
	s.st.InFlight = w.running.Load() // in flight: jobs in the sink, as /status counts them
	if w.fleet != nil {
		fs := w.fleet.Info()
		s.fleetShare, s.fleetMode, s.fleetProcs = fs.Share, fs.Mode, fs.Workers
	}
	return s
}

// milli returns f rounded to 3 decimals: a rate measured over a second
// has no more precision, and /samples stays short.
func milli(f float64) float64 { return math.Round(f*1000) / 1000 }

// unix returns t in Unix seconds, to the millisecond.
func unix(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// brokerList returns the brokers this run uses (those a source, probe
// or fleet asked for), described without credentials as the logs
// describe them, with the address of each embedded broker started so far.
func brokerList(f *config.File, b *brokers.Brokers) []status.Broker {
	usedRedis, usedNATS := b.Used()
	embedded := b.Embedded()
	var list []status.Broker
	add := func(kind string, embed bool, target func() string) {
		if embed {
			list = append(list, status.Broker{Kind: kind, Embedded: true, Addr: embedded[kind]})
			return
		}
		list = append(list, status.Broker{Kind: kind, Addr: b.Secrets().String(strings.TrimPrefix(target(), kind+" "))})
	}
	if usedRedis {
		add("redis", f.Redis.Addr == config.Embedded, b.RedisTarget)
	}
	if usedNATS {
		add("nats", f.NATS.URL == config.Embedded, b.NATSTarget)
	}
	return list
}

// processInfo returns what does not change while the process runs: its
// pid, host, module version and Go version, read once.
var processInfo = sync.OnceValue(func() status.Process {
	p := status.Process{PID: os.Getpid(), Version: "(devel)"}
	p.Host, _ = os.Hostname()
	if bi, ok := debug.ReadBuildInfo(); ok {
		p.Go = bi.GoVersion
		if bi.Main.Version != "" {
			p.Version = bi.Main.Version
		}
	}
	return p
})

// ms returns d in milliseconds, to 0.01 ms.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }
