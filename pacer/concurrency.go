package pacer

import (
	"log/slog"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyAuto, as Config.LatencyTarget, turns on the learned concurrency
// limit with no target to know: the pacer holds the downstream near its
// no-load latency (see docs/capacity.md).
const LatencyAuto time.Duration = -1

// The concurrency controller's constants; docs/capacity.md explains each.
const (
	// concMinJobs is the fewest latencies a judgement is made on; at a
	// low rate, where they would take long to come, a judgement is made
	// after concSlowEvery on two rounds of the limit (at least
	// concSlowJobs), so that a limit of a few slow jobs still learns.
	concMinJobs   = 40
	concSlowJobs  = 4
	concSlowEvery = int64(time.Second) << tickShift
	// concQueued is how far the mean latency may rise over the no-load
	// latency (two judgements running) before the downstream is taken to
	// queue: 1.2 is a queue of a fifth of its servers.
	concQueued = 1.2
	// concIdle is the rise under which the downstream is taken not to
	// queue at all: the limit then grows fast.
	concIdle = 1.08
	// concGrowFast and concGrow multiply the limit per judgement while
	// the downstream does not queue, or queues less than concQueued.
	concGrowFast = 1.25
	concGrow     = 1.05
	// concDrain is the share of the no-queue limit (throughput × no-load
	// latency, by Little's law) a cut sets, so that the downstream's
	// queue drains and the no-load latency stays measurable.
	concDrain = 0.97
	// concBaseEvery and concBaseJudged are how long each of the two
	// baseline buckets covers, and the fewest judgements it holds: the
	// no-load latency is the least smoothed mean of the last 5 to 10 s,
	// or of the last 25 to 50 judgements at a low rate, where 5 s hold
	// only one or two and a lasting queue would become the baseline.
	concBaseEvery  = int64(5*time.Second) << tickShift
	concBaseJudged = 25
	// concRebase is how many cuts in a row, none of which brought the
	// latency down, make the current latency the new no-load latency:
	// the downstream got slower, not busier.
	concRebase = 3
	// concCliff is the rise of the mean latency over the no-load latency
	// past which a cut is taken for a cliff (the servers went away, or
	// this machine stalled) rather than for the knee.
	concCliff = 2
	// concInitial is the limit a pacer starts at: one job, so that the
	// first judgements measure the no-load latency (a downstream of fewer
	// servers than a higher start would already queue, and hold the
	// baseline up); the limit then grows by concGrowFast.
	concInitial = 1
)

// latBuckets is the latency histogram's size: 16 buckets an octave
// (3.1 % to 6.25 % wide), from 1ns up to 2⁴⁴ ns (about 5 hours), which holds every
// latency a job has.
const latBuckets = 41 * 16

// latBucket returns the histogram bucket of latency d (ns): below 16ns
// one a nanosecond, then 16 an octave.
func latBucket(d int64) int {
	if d < 16 {
		return int(max(d, 0))
	}
	u := uint64(d)
	o := bits.Len64(u) - 1 // ≥ 4
	i := (o-3)*16 + int(u>>(o-4))&15
	return min(i, latBuckets-1)
}

// latValue returns the lower bound of bucket i, ns.
func latValue(i int) float64 {
	if i < 16 {
		return float64(i)
	}
	o := i/16 + 3
	return float64(uint64(16+i%16) << (o - 4))
}

// concState is the concurrency controller's state. Its fields are
// guarded by Pacer.mu but for hist, which Done adds to.
type concState struct {
	on     bool
	target time.Duration // p90 bound; 0 with LatencyAuto
	max    float64       // MaxInFlight, or InFlightLimit
	limit  float64       // the learned limit, in [1, max]

	hist    [latBuckets]atomic.Uint64 // latencies of successful jobs dispatched since at, cumulative
	sum     atomic.Uint64             // their sum, ns
	seen    [latBuckets]uint64        // hist at the last judgement
	seenSum uint64                    // sum then
	at      atomic.Int64              // base ticks of the last cut: older jobs are not judged

	base            [2]float64 // least smoothed mean latency of the current and last baseline bucket, ns
	baseAt          int64      // base ticks the current bucket began
	baseN           int        // judgements in the current bucket
	judgedAt        int64      // base ticks of the last judgement
	reached         bool       // the last judgement saw the limit reached
	cutsInRow       int        // cuts since the latency last came back under concQueued
	smooth, meanCut float64    // the mean latency, smoothed over judgements; and at the last cut
	mean, p50, p90  float64    // of the last judgement, ns
	cuts            uint64
	knee            float64 // the limit that held the downstream with no queue, at the last cut: the limit grows fast up to it
	logAt           int64   // base ticks of the last INFO line of a cut
	unlogged        int     // cuts since then, not yet logged
}

// initConc sets the controller up for c at base ticks now.
func (p *Pacer) initConc(c Config, now int64) {
	k := &p.conc
	k.on = c.LatencyTarget != 0
	if !k.on {
		return
	}
	if c.LatencyTarget > 0 {
		k.target = c.LatencyTarget
	}
	k.max = float64(InFlightLimit)
	if c.MaxInFlight > 0 {
		k.max = float64(c.MaxInFlight)
	}
	k.limit = min(k.max, concInitial)
	k.base = [2]float64{math.Inf(1), math.Inf(1)}
	k.baseAt = now
	k.at.Store(math.MinInt64)
	k.logAt = math.MinInt64 / 2
	p.slots = &slots{max: int(k.limit)}
}

// observeLatency records the latency of a successful job dispatched (or
// started) at ticks at, Done at now. It never blocks.
func (p *Pacer) observeLatency(at, now int64) {
	if at >= p.conc.at.Load() {
		d := (now - at) >> tickShift
		p.conc.hist[latBucket(d)].Add(1)
		p.conc.sum.Add(uint64(max(d, 0)))
	}
}

// judgeConc judges the latencies since the last judgement, if there are
// enough of them, and moves the limit. It returns the log record of a
// cut, at most one a second. It requires mu held.
func (p *Pacer) judgeConc(now int64) (rec *slog.Record) {
	k := &p.conc
	mean, p90, ok := k.sample(now)
	if !ok {
		return nil
	}
	base := k.baseline(now, mean)
	peak := p.slots.takePeak()
	k.reached = float64(peak) >= math.Floor(k.limit)

	slow := k.target > 0 && p90 > float64(k.target)
	switch {
	case min(mean, k.smooth) > concQueued*base || mean > concCliff*base || slow:
		var rebased bool
		if rec, rebased = p.cutConc(now, mean, base, p90, slow); rebased {
			return nil
		}
	case k.reached:
		k.grow(mean, base)
	default:
		k.cutsInRow = 0
	}
	p.slots.setMax(int(math.Round(k.limit)))
	return rec
}

// sample reads the latency histogram's window since the last judgement:
// its mean and 90th percentile, and whether it holds enough jobs (or has
// waited long enough) to be judged. A window judged becomes the seen one.
func (k *concState) sample(now int64) (mean, p90 float64, ok bool) {
	var win, cur [latBuckets]uint64
	var n uint64
	for i := range win {
		cur[i] = k.hist[i].Load()
		win[i] = cur[i] - k.seen[i]
		n += win[i]
	}
	slowEnough := now-k.judgedAt >= concSlowEvery && n >= uint64(max(concSlowJobs, 2*math.Ceil(k.limit)))
	if n < concMinJobs && !slowEnough {
		return 0, 0, false
	}
	k.judgedAt = now
	k.seen = cur
	sum := k.sum.Load()
	mean = float64(sum-k.seenSum) / float64(n)
	k.seenSum = sum
	p50, p90 := quantile(&win, n, 0.5), quantile(&win, n, 0.9)
	k.mean, k.p50, k.p90 = mean, p50, p90
	return mean, p90, true
}

// baseline folds mean into the no-load latency's estimate and returns it.
//
// The mean latency, not a percentile, says how many jobs queue: by
// Little's law the jobs inside the downstream are its throughput times
// the mean latency, whatever the latencies' spread. The baseline is the
// least of the mean smoothed over two judgements: the least raw mean of
// many noisy windows would sit under the no-load latency, and every cut
// by it would be too deep.
func (k *concState) baseline(now int64, mean float64) float64 {
	if k.smooth == 0 {
		k.smooth = mean
	}
	k.smooth = (k.smooth + mean) / 2
	if now-k.baseAt >= concBaseEvery && k.baseN >= concBaseJudged {
		k.base[1], k.base[0] = k.base[0], math.Inf(1)
		k.baseAt, k.baseN = now, 0
	}
	k.baseN++
	k.base[0] = min(k.base[0], k.smooth)
	return min(k.base[0], k.base[1])
}

// cutConc cuts the limit: the downstream queues. It sets the limit to
// what the downstream holds with no queue (the limit × no-load ÷ mean
// latency, by Little's law), a little under, so that its queue drains;
// with a target, to what keeps its 90th percentile under the target. It
// returns the cut's log record, or rebased true (and no cut) when cuts in
// a row did not bring the latency down: the downstream got slower, not
// busier, and the baseline moves to the latency now.
func (p *Pacer) cutConc(now int64, mean, base, p90 float64, slow bool) (rec *slog.Record, rebased bool) {
	k := &p.conc
	next := k.limit * base / mean
	if slow {
		next = min(next, k.limit*float64(k.target)/p90)
	}
	next = max(concDrain*next, k.limit/2, 1)
	if k.cutsInRow > 0 && mean >= k.meanCut && !slow && k.cutsInRow+1 >= concRebase {
		k.base = [2]float64{mean, mean}
		k.smooth = mean
		k.cutsInRow = 0
		return nil, true
	}
	if mean <= concCliff*base {
		k.knee = next / concDrain
	} else {
		k.knee = max(next/concDrain, k.knee/2) // a cliff, or a stall: keep half of what was known
	}
	rec = p.concRecord(now, next, mean, base, p90)
	k.cutsInRow++
	k.meanCut = mean
	// The next judgement, of jobs sent after the cut only, starts the
	// smoothing afresh: blended with this one, it would keep the baseline
	// from coming down to what the cut measures.
	k.smooth = 0
	k.limit = next
	k.cuts++
	k.at.Store(now)
	return rec, false
}

// grow raises the limit: it was reached, and the downstream did not
// queue, so more may go in. Fast while far under the knee (or none is
// known) and the downstream does not queue at all; then slowly, close to
// where it queued last. Slow growth is by a share, not by a whole job:
// with few servers, one job more is a long queue, and the limit stays at
// what they serve for several judgements before it tries it.
func (k *concState) grow(mean, base float64) {
	k.cutsInRow = 0
	grow := concGrow
	if mean <= concIdle*base && (k.knee == 0 || k.limit*concGrowFast <= k.knee) {
		grow = concGrowFast
	}
	next := k.limit * grow
	if grow == concGrowFast {
		next = max(next, k.limit+1)
	}
	k.limit = min(k.max, next)
	if k.knee > 0 {
		k.knee = max(k.knee, k.limit) // past the knee with no queue: it moved
	}
}

// concRecord returns the INFO record of a cut of the limit to next, or
// nil within a second of the last one (the cut is counted in the next).
// It requires mu held.
func (p *Pacer) concRecord(now int64, next, mean, base, p90 float64) *slog.Record {
	k := &p.conc
	if now-k.logAt < logEvery {
		k.unlogged++
		return nil
	}
	k.logAt = now
	attrs := []slog.Attr{
		slog.Int("from", int(math.Round(k.limit))), slog.Int("to", int(math.Round(next))),
		slog.Duration("mean_latency", time.Duration(mean).Round(10*time.Microsecond)),
		slog.Duration("no_load", time.Duration(base).Round(10*time.Microsecond)),
		slog.Duration("p90", time.Duration(p90).Round(10*time.Microsecond)),
	}
	if k.unlogged > 0 {
		attrs = append(attrs, slog.Int("more_cuts", k.unlogged))
		k.unlogged = 0
	}
	return p.record(now, slog.LevelInfo, "pacer: concurrency limit lowered", attrs...)
}

// quantile returns the q-quantile of the n latencies in h, ns: the
// middle of its bucket.
func quantile(h *[latBuckets]uint64, n uint64, q float64) float64 {
	rank := uint64(math.Ceil(q * float64(n)))
	var sum uint64
	for i, c := range h {
		sum += c
		if sum >= rank && c > 0 {
			lo := latValue(i)
			if i+1 < latBuckets {
				return (lo + latValue(i+1)) / 2
			}
			return lo
		}
	}
	return 0
}

// concLimit returns the learned limit and whether it holds the jobs in
// flight: it is under MaxInFlight and was reached since the judgement
// before the last (or is full now). It requires mu held.
func (p *Pacer) concLimit() (limit int, binding bool) {
	k := &p.conc
	if !k.on {
		return 0, false
	}
	limit = int(math.Round(k.limit))
	return limit, float64(limit) < k.max && (k.reached || p.slots.full())
}
