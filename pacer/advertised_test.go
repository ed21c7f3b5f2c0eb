package pacer_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// A downstream that allows 100 calls in each fixed second and says so
// (remaining and reset on every answer, as X-RateLimit-Remaining and
// -Reset do), answering 429 beyond; 20 workers, 5ms a call, a ceiling of
// 1000/s. Once its first answer is read, nothing is throttled: the
// advice spreads the rest of each window and stops dispatch when none is
// left; goodput is ≥ 0.95 of 100/s.
func TestAdvisedLimitIsNeverPushedInto429(t *testing.T) {
	t.Parallel()
	const quota, window, lat = 100, time.Second, 5 * time.Millisecond
	p, clk := newPacer(t, pacer.Config{Rate: 1000, Burst: 5})
	type call struct {
		pm        *pacer.Permit
		doneAt    time.Duration
		ok        bool
		remaining int
		reset     time.Duration
	}
	var busy []call
	used, thrAfterFirst, okN := 0, 0, 0
	var now time.Duration
	for now < 20*time.Second {
		clk.Advance(time.Millisecond)
		now += time.Millisecond
		if now%window == 0 {
			used = 0
		}
		keep := busy[:0]
		for _, c := range busy {
			if c.doneAt > now {
				keep = append(keep, c)
				continue
			}
			c.pm.Advise(c.remaining, c.reset)
			if c.ok {
				c.pm.Done(nil)
				if now >= 2*window {
					okN++
				}
			} else {
				c.pm.Done(pacer.Throttle(c.reset, errors.New("429")))
				if now >= window+lat {
					thrAfterFirst++
				}
			}
		}
		busy = keep
		for len(busy) < 20 {
			pm, ok := p.TryAcquire(1)
			if !ok {
				break
			}
			c := call{pm: pm, doneAt: now + lat}
			c.ok = used < quota
			if c.ok {
				used++
			}
			c.remaining = quota - used
			// The reset as the answer will carry it.
			c.reset = window - (now+lat)%window
			busy = append(busy, c)
		}
	}
	good := float64(okN) / 18
	st := p.Stats()
	t.Logf("goodput %.1f/s past the first 2s, %d throttled after the first window; reason %s, pace %.1f", good, thrAfterFirst, st.Reason, st.Pace)
	if thrAfterFirst != 0 || good < 0.95*quota {
		t.Errorf("%d throttled after the first window, goodput %.1f/s; want 0 and ≥ %v", thrAfterFirst, good, 0.95*quota)
	}
}
