package pacer

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// keyState is one key of a Keyed: its own pace (a schedule of due times,
// as sched keeps, in two words), what it learned from pushback, its
// place in the fair queue and its counts. It is kept small: a Keyed
// holds up to 100,000 of them.
type keyState struct {
	kp   *Keyed
	name string

	// The key's own schedule: zero is the instant its balance is zero,
	// cost the ticks of one job at its pace, full its burst × cost.
	zero atomic.Int64
	cost atomic.Int64
	full atomic.Int64

	used                                     atomic.Int64  // ticks of the last dispatch or wait: idle keys are forgotten
	nextEval                                 atomic.Int64  // ticks of the next probe step; MaxInt64 while no limit is learned
	waiting                                  atomic.Int32  // callers of this key in the fair queue
	gone                                     atomic.Bool   // forgotten: a caller that found it looks again
	waitMax                                  atomic.Int64  // ticks: the longest wait in the fair queue
	waitSum                                  atomic.Int64  // ticks: the waits in the fair queue, summed
	waited                                   atomic.Uint64 // callers who waited in the fair queue
	dispatched, succeeded, failed, throttled atomic.Uint64

	mu    sync.Mutex // guards the fields below
	lim   KeyLimits  // Rate, Burst, Weight in force
	over  bool       // lim comes from KeyedConfig.Keys or SetKey
	learn keyLearn

	// Guarded by kp.fq.mu: the fair queue.
	q      []*keyWaiter // callers waiting, FIFO
	tag    float64      // start tag of q[0] while ready
	finish float64      // end tag of the key's last job dispatched by the queue
	due    int64        // ticks at which q[0] may start, while later
	weight float64      // lim.Weight, for the queue
	hidx   int32        // index in the heap it is in
	where  uint8        // inNone, inReady, inLater
}

// keyLearn is what a key learned from pushback, as capState is for a
// Pacer, in less room: the good rate is measured over two samples of
// half a second or more (see roll), from the counts at their start.
type keyLearn struct {
	limit, wmax, from float64 // jobs/s: the limit now (+Inf: none), the last known limit, the limit just after the cut
	paced             float64 // jobs the pace allowed up to pacedAt: pace × seconds, summed
	pacedAt           int64   // ticks
	winPaced          [2]float64
	cutAt, probeAt    int64 // ticks of the last cut, and the probe curve's time origin
	pausedUntil       int64 // ticks
	cuts, tolerated   uint32
	winAt             [2]int64  // ticks at the start of the older and the newer sample
	winDone, winThr   [2]uint64 // jobs done and throttled at those starts
}

const (
	keySample  = int64(500*time.Millisecond) << tickShift
	keyProbeAt = sampleTicks // the probe curve moves every 100ms of dispatch
	// keyProbeRate is the pace under which a key's probe curve is
	// slowed, by up to 10× (see probe).
	keyProbeRate = 50
	// keyOutcomes is the fewest outcomes a sample of a slow key holds:
	// a key at 5 jobs/s measures over 2-4 s, not over 5 outcomes.
	keyOutcomes = 10
	// keyIdle is the longest sample: a key idle for longer starts its
	// window afresh.
	keyIdle = int64(5*time.Second) << tickShift
)

func (ks *keyState) init(now int64, l KeyLimits, over bool) {
	ks.lim, ks.over, ks.weight = l, over, l.Weight
	ks.learn.limit = math.Inf(1)
	ks.learn.cutAt = math.MinInt64
	ks.learn.winAt = [2]int64{now, now}
	ks.nextEval.Store(math.MaxInt64)
	ks.used.Store(now)
	ks.zero.Store(math.MinInt64 / 4)
	ks.learn.pacedAt = now
	ks.setPace(now)
}

// burst returns the key's burst in jobs.
func (ks *keyState) burst() float64 {
	c := ks.cost.Load()
	return float64(ks.full.Load()) / float64(c)
}

// pace returns the key's pace in jobs per second. It requires mu held.
func (ks *keyState) pace() float64 {
	return min(ks.lim.Rate, max(ks.learn.limit, ks.floor()))
}

// floor is the lowest pace pushback sets: a thousandth of the key's
// ceiling. It requires mu held.
func (ks *keyState) floor() float64 { return ks.lim.Rate / 1000 }

// setPace installs the pace on the key's schedule at now, counting the
// jobs the old pace allowed since the last change. It requires mu held
// (or the key not yet published).
func (ks *keyState) setPace(now int64) {
	ks.account(now)
	c := int64(ticksPerSec / min(ks.pace(), MaxRate))
	ks.cost.Store(c)
	ks.full.Store(int64(ks.lim.Burst) * c)
}

// account adds to paced the jobs the pace allowed until now. It requires
// mu held.
func (ks *keyState) account(now int64) {
	l := &ks.learn
	// Paused, the pace allows nothing.
	if from := max(l.pacedAt, l.pausedUntil); ks.cost.Load() > 0 && now > from {
		l.paced += float64(now-from) / float64(ks.cost.Load())
	}
	l.pacedAt = max(l.pacedAt, now)
}

// take takes n jobs of the key's pace at now, if they are there.
func (ks *keyState) take(now int64, n int) bool { return ks.takeFrom(now, n, math.MaxInt64) }

// takeFrom is take with the schedule's floor lowered to at most from: a
// caller the fair queue served late takes on the key's schedule, as
// sched.takeFrom does for a waiter woken late.
func (ks *keyState) takeFrom(now int64, n int, from int64) bool {
	for {
		z, c := ks.zero.Load(), ks.cost.Load()
		base := max(z, min(now-ks.full.Load(), from))
		nz := base + int64(n)*c
		if nz > now {
			return false
		}
		if ks.zero.CompareAndSwap(z, nz) {
			return true
		}
	}
}

// dueAt is the instant n jobs of the key's pace are there.
func (ks *keyState) dueAt(now int64, n int) int64 {
	z := ks.zero.Load()
	return max(z, now-ks.full.Load()) + int64(n)*ks.cost.Load()
}

// refund gives back n jobs taken at now, without overfilling or
// passing a pause.
func (ks *keyState) refund(now int64, n int) {
	for {
		z, c := ks.zero.Load(), ks.cost.Load()
		nz := max(z-int64(n)*c, now-ks.full.Load())
		ks.mu.Lock()
		nz = max(nz, ks.learn.pausedUntil-c)
		ks.mu.Unlock()
		if nz >= z || ks.zero.CompareAndSwap(z, nz) {
			return
		}
	}
}

// setLimits installs l, live.
func (ks *keyState) setLimits(l KeyLimits, over bool) {
	ks.mu.Lock()
	ks.lim, ks.over = l, over
	ks.setPace(ks.kp.global.now())
	ks.mu.Unlock()
	fq := &ks.kp.fq
	fq.mu.Lock()
	ks.weight = l.Weight
	fq.wake()
	fq.mu.Unlock()
}

// done reports the outcome of pm, a permit of this key.
func (ks *keyState) done(pm *Permit, outcome error) {
	n := pm.finish()
	if n == 0 {
		ks.kp.misuse.Add(1)
		return
	}
	if outcome == nil {
		ks.succeeded.Add(uint64(n))
		return
	}
	retry, ok := IsThrottled(outcome)
	if !ok {
		ks.failed.Add(uint64(n))
		return
	}
	ks.throttled.Add(uint64(n))
	if retry <= 0 {
		retry = ks.kp.cfg.DefaultRetryAfter
	}
	ks.pushback(max(ks.kp.global.now(), pm.at.Load()), pm.at.Load(), retry)
}

// cancel gives back n jobs of a permit of this key that never ran.
func (ks *keyState) cancel(_ *Permit, n int) {
	if n == 0 {
		ks.kp.misuse.Add(1)
		return
	}
	now := ks.kp.global.now()
	ks.refund(now, n)
	ks.kp.global.refund(now, float64(n))
	ks.dispatched.Add(^uint64(n - 1))
	ks.kp.fq.mu.Lock()
	ks.kp.fq.wake()
	ks.kp.fq.mu.Unlock()
}

// roll moves the key's two samples on at now: a sample closes once it
// is half a second long and holds keyOutcomes outcomes, or once it is
// keyIdle long. It requires mu held.
func (ks *keyState) roll(now int64) {
	l := &ks.learn
	done, thr := ks.succeeded.Load()+ks.failed.Load(), ks.throttled.Load()
	age := now - l.winAt[1]
	if age < keySample || age < keyIdle && done+thr-l.winDone[1]-l.winThr[1] < keyOutcomes {
		return
	}
	ks.account(now)
	if age >= keyIdle {
		// Idle: no measure of the downstream. Start afresh.
		l.winAt = [2]int64{now, now}
		l.winDone = [2]uint64{done, done}
		l.winThr = [2]uint64{thr, thr}
		l.winPaced = [2]float64{l.paced, l.paced}
		return
	}
	l.winAt[0], l.winDone[0], l.winThr[0], l.winPaced[0] = l.winAt[1], l.winDone[1], l.winThr[1], l.winPaced[1]
	l.winAt[1], l.winDone[1], l.winThr[1], l.winPaced[1] = now, done, thr, l.paced
}

// window returns the pace the key's downstream took over the key's two
// samples (the pace over them times the share of outcomes not
// throttled, as goodputOver measures it for a Pacer) and the share of
// throttled outcomes in them, and whether they cover enough time to
// trust the rate. It requires mu held.
func (ks *keyState) window(now int64) (took, share float64, thr uint64, ok bool) {
	l := &ks.learn
	ks.account(now)
	done := ks.succeeded.Load() + ks.failed.Load() - l.winDone[0]
	thr = ks.throttled.Load() - l.winThr[0]
	if done+thr > 0 {
		share = float64(thr) / float64(done+thr)
	}
	ticks := now - l.winAt[0]
	if ticks < minWindow {
		return 0, share, thr, false
	}
	return (l.paced - l.winPaced[0]) / (float64(ticks) / ticksPerSec) * (1 - share), share, thr, true
}

// pushback handles a Throttled outcome at now of a job dispatched at
// ticks at: the key's pace drops to just under its good rate, once per
// event, as Pacer's does (see cut in capacity.go); a long retry-after or
// a storm pauses the key.
func (ks *keyState) pushback(now, at int64, retry time.Duration) {
	kp := ks.kp
	ks.mu.Lock()
	ks.roll(now)
	l := &ks.learn
	took, share, thr, ok := ks.window(now)
	var rec *slog.Record
	switch {
	case at < l.cutAt:
		// Sent before the last cut: that cut answered it.
	case ks.pace() < l.wmax && share < noiseShare:
		l.tolerated++ // jitter under the last known limit
	default:
		pace := ks.pace()
		est := pace * kp.cfg.Cut / beta
		if ok {
			est = min(took, pace)
		}
		l.wmax = max(est, ks.floor())
		l.from = max(beta*l.wmax, ks.floor())
		l.limit = l.from
		l.cutAt, l.probeAt = now, now
		l.cuts++
		ks.setPace(now)
		ks.nextEval.Store(now + keyProbeAt)
		rec = kp.record(now, slog.LevelDebug, "pacer: key's pace lowered", slog.String("key", ks.name),
			slog.Float64("from", round3(pace)), slog.Float64("to", round3(ks.pace())))
	}
	if retry >= kp.cfg.PauseAfter || thr >= stormMin && share >= kp.cfg.StormShare {
		until := now + int64(min(retry, maxPause))<<tickShift
		if until > l.pausedUntil {
			l.probeAt += until - max(now, l.pausedUntil) // the probe stands still while paused
			l.pausedUntil = until
			l.cutAt = now
			ks.hold(until)
			// A new regime: the window starts afresh after the pause.
			ks.account(now)
			done, thr := ks.succeeded.Load()+ks.failed.Load(), ks.throttled.Load()
			l.winAt = [2]int64{until, until}
			l.winDone, l.winThr = [2]uint64{done, done}, [2]uint64{thr, thr}
			l.winPaced = [2]float64{l.paced, l.paced}
		}
	}
	ks.mu.Unlock()
	kp.log(rec)
}

// hold keeps the key's schedule from giving anything before until.
func (ks *keyState) hold(until int64) {
	for {
		z := ks.zero.Load()
		nz := until - ks.cost.Load()
		if z >= nz || ks.zero.CompareAndSwap(z, nz) {
			return
		}
	}
}

// probe moves the key's learned limit along the probe curve (see
// probeCurve in capacity.go) at now, the time of a dispatch. It skips if
// another goroutine holds mu: the next dispatch moves it.
func (ks *keyState) probe(now int64) {
	if !ks.mu.TryLock() {
		return
	}
	defer ks.mu.Unlock()
	l := &ks.learn
	if math.IsInf(l.limit, 1) || now < ks.nextEval.Load() {
		return
	}
	ks.roll(now)
	// A slow key probes slower: the curve's time runs at wmax ÷
	// keyProbeRate of the clock's, so that each of its steps holds
	// about as many outcomes as at keyProbeRate, enough to see a 429
	// before the pace is far past the capacity.
	t := float64(max(0, now-l.probeAt)) / ticksPerSec * min(1, max(0.1, l.wmax/keyProbeRate))
	if t <= recoverSecs {
		u := 1 - t/recoverSecs
		l.limit = l.wmax - (l.wmax-l.from)*u*u*u
	} else {
		l.limit = l.wmax * (1 + probeStep*(math.Exp2((t-recoverSecs)/probeDoubleSecs)-1))
	}
	if l.limit >= ks.lim.Rate {
		l.limit = math.Inf(1) // probed up to the key's ceiling
		ks.nextEval.Store(math.MaxInt64)
	} else {
		ks.nextEval.Store(now + keyProbeAt)
	}
	ks.setPace(now)
}

// record makes a log record for KeyedConfig.Logger, or nil without one.
func (kp *Keyed) record(now int64, level slog.Level, msg string, attrs ...slog.Attr) *slog.Record {
	lg := kp.cfg.Logger
	if lg == nil || !lg.Enabled(context.Background(), level) {
		return nil
	}
	r := slog.NewRecord(kp.global.epoch.Add(time.Duration(now>>tickShift)), level, msg, 0)
	r.AddAttrs(attrs...)
	return &r
}

// log emits r, outside any lock.
func (kp *Keyed) log(r *slog.Record) {
	if r != nil {
		_ = kp.cfg.Logger.Handler().Handle(context.Background(), *r)
	}
}
