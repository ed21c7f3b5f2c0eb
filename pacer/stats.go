package pacer

import (
	"math"
	"time"
)

// Stats is a snapshot of a Pacer.
type Stats struct {
	Pace        float64   // jobs per second now: min(Base × Factor, Ceiling); 0 while paused
	Ceiling     float64   // the ceiling's rate, jobs per second
	Base        float64   // the base pace, jobs per second
	Factor      float64   // the controller's factor
	Backlog     Backlog   // the last backlog read
	InFlight    int64     // jobs admitted and neither finished nor given back: Dispatched − Succeeded − Failed − Throttled
	Dispatched  uint64    // jobs admitted, less those given back by Cancel and CancelN
	Succeeded   uint64    // jobs Done with nil
	Failed      uint64    // jobs Done with an error other than Throttled
	Throttled   uint64    // jobs Done with a Throttled outcome
	Pauses      uint64    // pauses by a retry-after of at least PauseAfter or by a storm; one however many outcomes extend it
	PausedUntil time.Time // end of the current pause; zero if not paused
	ProbeErrors uint64    // probe reads that failed
	Reason      Reason    // what sets the pace now
	Goodput     float64   // jobs done (succeeded or failed) per second over the last second
	Capacity    float64   // the downstream's estimated capacity, jobs per second; 0 while no pushback limits the pace
	Cuts        uint64    // pace cuts by pushback, one per event
	// ConcurrencyLimit is the learned concurrency limit (see
	// Config.LatencyTarget); 0 when it is off.
	ConcurrencyLimit int
	// ConcurrencyCuts counts the cuts of the concurrency limit by latency.
	ConcurrencyCuts uint64
	// LatencyNoLoad is the no-load latency the concurrency limit is
	// judged against (the least mean latency of the last 5-10 s);
	// LatencyMean, LatencyP50 and LatencyP90 are the mean, median and
	// 90th percentile latency of its last judgement. All are 0 while
	// unknown or off.
	LatencyNoLoad, LatencyMean, LatencyP50, LatencyP90 time.Duration
	// PermitMisuse counts the calls on a Permit that did nothing: Done or
	// Cancel after the first Done or Cancel, and CancelN of more jobs than
	// the permit holds. It is a caller bug; the pacer's counts stay right.
	PermitMisuse uint64
}

// Stats returns a snapshot of the pacer's state and counters.
//
// InFlight is derived from the counters rather than kept in one more, so
// that the fast path does two atomic adds fewer: Dispatched less the jobs
// finished, from the same loads, so that the snapshot agrees with itself.
// The finished counters are read before Dispatched, so InFlight is never
// negative: a permit is counted dispatched before it is handed out, and
// its jobs finished only after. Of Dispatched's two parts, moreJobs is
// read before issued: a give-back seen in moreJobs came after its
// permit's claim, so issued, read later, holds that permit too (read the
// other way, an Acquire and Cancel between the reads would show one
// dispatched fewer than there were, and InFlight −1). Done gives back its in-flight slot before
// it counts the outcome, so InFlight may count a job that is finishing,
// and pass MaxInFlight by the jobs finishing at that instant.
func (p *Pacer) Stats() Stats {
	now := p.base.s.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{
		Ceiling: p.rate, Base: p.base.Leak(), Factor: p.factor,
		Backlog:   p.backlog,
		Succeeded: p.succeeded.Load(), Failed: p.failed.Load(), Throttled: p.throttled.Load(),
		Pauses: p.pauses.Load(), ProbeErrors: p.probeErrors.Load(),
		Reason: p.reason(), Capacity: p.capacityEstimate(now), Cuts: p.cap.cuts,
		PermitMisuse: p.misuse.Load(),
	}
	more := p.moreJobs.Load() // after the finished counters, before issued: see above
	s.Dispatched = p.issued() + more
	if k := &p.conc; k.on {
		s.ConcurrencyLimit, s.ConcurrencyCuts = int(math.Round(k.limit)), k.cuts
		if b := min(k.base[0], k.base[1]); !math.IsInf(b, 1) {
			s.LatencyNoLoad = time.Duration(b)
		}
		s.LatencyMean, s.LatencyP50, s.LatencyP90 = time.Duration(k.mean), time.Duration(k.p50), time.Duration(k.p90)
	}
	s.InFlight = int64(s.Dispatched - s.Succeeded - s.Failed - s.Throttled)
	s.Goodput, _ = p.goodput(now)
	s.Pace = min(s.Base*s.Factor, s.Ceiling)
	if now < p.pausedUntil {
		s.Pace = 0
		s.PausedUntil = p.base.s.epoch.Add(time.Duration(p.pausedUntil >> tickShift))
	}
	return s
}
