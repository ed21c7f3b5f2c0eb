package pacer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

type takeStep struct {
	at time.Duration // since t0
	n  int
	ok bool
}

// taker is what runTakeSteps drives: TokenBucket and LeakyBucket.
type taker interface {
	TryAcquireAt(now time.Time, n int) bool
}

func runTakeSteps(t *testing.T, b taker, steps []takeStep) {
	t.Helper()
	for i, s := range steps {
		if got := b.TryAcquireAt(t0.Add(s.at), s.n); got != s.ok {
			t.Fatalf("step %d: TryAcquireAt(t0+%v, %v) = %v, want %v", i, s.at, s.n, got, s.ok)
		}
	}
}

func newClockBucket(t *testing.T, rate, capacity float64) (*pacer.TokenBucket, *testutil.Clock) {
	t.Helper()
	clk := testutil.NewClock(t0)
	b, err := pacer.NewTokenBucket(rate, capacity, clk)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

func TestTokenBucketRefillAndBurst(t *testing.T) {
	t.Parallel()
	b, _ := newClockBucket(t, 10, 3) // one token per 100ms, burst 3
	runTakeSteps(t, b, []takeStep{
		{0, 1, true}, {0, 1, true}, {0, 1, true}, // starts full: the burst
		{0, 1, false},
		{ms(99), 1, false},
		{ms(100), 1, true},
		{ms(100), 1, false},
		{ms(250), 1, true},  // 1.5 tokens had refilled
		{ms(300), 1, true},  // the half left plus half refilled
		{ms(399), 1, false}, // 0.99 tokens
		{ms(400), 1, true},
		{ms(10_000), 4, false}, // more than the capacity never fits at once
		{ms(10_000), 3, true},  // idle catch-up is capped at the capacity
		{ms(10_000), 1, false},
	})
}

// A negative n is refused; n = 0 is granted (TestZeroIsGranted).
func TestTokenBucketTryAcquireRejectsNegative(t *testing.T) {
	t.Parallel()
	b, _ := newClockBucket(t, 10, 3)
	for _, n := range []int{-1, math.MinInt} {
		if b.TryAcquireAt(t0, n) {
			t.Errorf("TryAcquireAt(t0, %v) = true, want false", n)
		}
	}
	if got := b.TokensAt(t0); got != 3 {
		t.Errorf("TokensAt(t0) = %v after refused takes, want 3", got)
	}
}

// start runs Acquire in a goroutine and returns a channel with its result.
func start(ctx context.Context, b *pacer.TokenBucket, n int) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.Acquire(ctx, n) }()
	return ch
}

// pending reports whether ch has no result once every goroutine of the
// test's bubble is blocked (synctest.Wait): no fixed wait before it.
func pending(ch <-chan error) bool {
	synctest.Wait()
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

func mustDone(t *testing.T, ch <-chan error, want error) {
	t.Helper()
	select {
	case err := <-ch:
		if !errors.Is(err, want) {
			t.Fatalf("Acquire returned %v, want %v", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not return")
	}
}

func TestTokenBucketWaitersServedInOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, clk := newClockBucket(t, 10, 1)
		if !b.TryAcquireAt(t0, 1) {
			t.Fatal("first take failed on a full bucket")
		}
		ctx := context.Background()
		// Queue three waiters one by one, so their order is known: the head
		// is queued once it has a timer; give the others time to queue.
		first := start(ctx, b, 1)
		clk.WaitTimers(1)
		second := start(ctx, b, 1)
		waitQueued(t, b, 2)
		third := start(ctx, b, 1)
		waitQueued(t, b, 3)
		if b.TryAcquire(1) {
			t.Fatal("TryAcquire jumped the queue of waiters")
		}
		clk.Advance(ms(100))
		mustDone(t, first, nil)
		if !pending(second) || !pending(third) {
			t.Fatal("a later waiter finished with the first")
		}
		clk.WaitTimers(1)
		clk.Advance(ms(100))
		mustDone(t, second, nil)
		if !pending(third) {
			t.Fatal("third finished with the second")
		}
		clk.WaitTimers(1)
		clk.Advance(ms(100))
		mustDone(t, third, nil)
	})
}

func TestTokenBucketCancelledWaiterTakesNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, clk := newClockBucket(t, 10, 2)
		if !b.TryAcquireAt(t0, 2) {
			t.Fatal("take of the burst failed")
		}
		ctx, cancel := context.WithCancel(context.Background())
		// head asks for 2: it will need 200ms; the one behind asks for 1.
		head := start(ctx, b, 2)
		clk.WaitTimers(1)
		behind := start(context.Background(), b, 1)
		waitQueued(t, b, 2)  // behind the head, not on the fast path
		clk.Advance(ms(100)) // one token: not enough for the head
		clk.WaitTimers(1)
		cancel()
		mustDone(t, head, context.Canceled)
		// The one behind is not held up: the token that refilled is its own.
		mustDone(t, behind, nil)
		if got := b.Tokens(); got != 0 {
			t.Fatalf("Tokens() = %v after the second waiter took the refilled token, want 0", got)
		}
	})
}

func TestTokenBucketCancelGivesBackChunks(t *testing.T) {
	t.Parallel()
	b, clk := newClockBucket(t, 10, 2)
	ctx, cancel := context.WithCancel(context.Background())
	// 5 > capacity: taken in chunks of 2; cancel after the first chunk.
	ch := start(ctx, b, 5)
	clk.WaitTimers(1) // took the full 2, sleeps for the next 2
	cancel()
	mustDone(t, ch, context.Canceled)
	if got := b.Tokens(); got != 2 {
		t.Fatalf("Tokens() = %v after a cancelled take, want 2 (it gives back what it took)", got)
	}
}

func TestTokenBucketTakeMoreThanCapacityEndsEmpty(t *testing.T) {
	t.Parallel()
	b, clk := newClockBucket(t, 10, 2)
	ch := start(context.Background(), b, 5) // 2 now, 3 more at 10/s: 300ms
	for i := 0; i < 2; i++ {
		clk.WaitTimers(1)
		next, _ := clk.Next()
		clk.Set(next)
	}
	mustDone(t, ch, nil)
	if got, want := clk.Now().Sub(t0), ms(300); got != want {
		t.Fatalf("Acquire(5) on capacity 2 at 10/s finished after %v, want %v", got, want)
	}
	if got := b.Tokens(); got != 0 {
		t.Fatalf("Tokens() = %v, want 0", got)
	}
}

func TestTokenBucketSetRateMidWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, clk := newClockBucket(t, 1, 1) // one a second
		b.TryAcquireAt(t0, 1)
		ch := start(context.Background(), b, 1)
		clk.WaitTimers(1)
		if next, _ := clk.Next(); next != t0.Add(time.Second) {
			t.Fatalf("waiter sleeps until %v, want t0+1s", next.Sub(t0))
		}
		clk.Advance(ms(500)) // half a token at the old rate
		if err := b.SetRate(10); err != nil {
			t.Fatal(err)
		}
		// The half token is kept; the other half takes 50ms at 10/s.
		waitNext(t, clk, t0.Add(ms(550)))
		clk.Advance(ms(50))
		mustDone(t, ch, nil)
	})
}

// A waiter whose timer fires late takes what fell due while it slept, and
// the caller that follows straight after catches up: a backlogged caller
// gets rate × t whatever the timers do.
func TestTokenBucketLateTimersKeepTheSchedule(t *testing.T) {
	t.Parallel()
	b, clk := newClockBucket(t, 1000, 1) // one per ms, burst 1
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int)
	go func() { // the backlogged caller
		n := 0
		for b.Acquire(ctx, 1) == nil {
			n++
		}
		got <- n
	}()
	for clk.Now().Sub(t0) < time.Second {
		if !clk.WaitTimers(1) {
			t.Fatal("the caller never slept")
		}
		clk.Advance(ms(2.5)) // every timer wakes up to 1.5ms late
	}
	clk.WaitTimers(1)
	cancel()
	n := <-got
	for b.TryAcquire(1) { // fell due, not asked for yet
		n++
	}
	elapsed := clk.Now().Sub(t0)
	want := int(elapsed/time.Millisecond) + 1 // rate × t, plus the burst
	if n != want {
		t.Fatalf("backlogged caller got %d permits in %v at 1000/s with late timers, want %d", n, elapsed, want)
	}
}

// After idle time the catch-up is capped at the capacity, even right after
// a late wake.
func TestTokenBucketIdleCatchUpCapped(t *testing.T) {
	t.Parallel()
	b, clk := newClockBucket(t, 1000, 5)
	b.TryAcquireAt(t0, 5)
	ch := start(context.Background(), b, 1)
	clk.WaitTimers(1)
	clk.Advance(ms(3)) // woke 2ms late: 2 more fell due
	mustDone(t, ch, nil)
	clk.Advance(time.Minute)
	n := 0
	for b.TryAcquire(1) {
		n++
	}
	if n != 5 {
		t.Fatalf("after a minute idle TryAcquire succeeded %d times, want the capacity, 5", n)
	}
}

func TestTokenBucketClose(t *testing.T) {
	t.Parallel()
	b, clk := newClockBucket(t, 1, 1)
	b.TryAcquireAt(t0, 1)
	ch := start(context.Background(), b, 1)
	clk.WaitTimers(1)
	b.Close()
	mustDone(t, ch, pacer.ErrClosed)
	if err := b.Acquire(context.Background(), 1); !errors.Is(err, pacer.ErrClosed) {
		t.Fatalf("Acquire after Close = %v, want ErrClosed", err)
	}
}

func TestTokenBucketValidation(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name           string
		rate, capacity float64
		field          string
	}{
		{"zero rate", 0, 1, "rate"},
		{"negative rate", -1, 1, "rate"},
		{"NaN rate", math.NaN(), 1, "rate"},
		{"+Inf rate", math.Inf(1), 1, "rate"},
		{"-Inf rate", math.Inf(-1), 1, "rate"},
		{"rate above MaxRate", 2e9, 1, "rate"},
		{"zero capacity", 1, 0, "capacity"},
		{"negative capacity", 1, -3, "capacity"},
		{"NaN capacity", 1, math.NaN(), "capacity"},
		{"+Inf capacity", 1, math.Inf(1), "capacity"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pacer.NewTokenBucket(tc.rate, tc.capacity, nil)
			checkInvalid(t, err, tc.field)
		})
	}
	b, _ := newClockBucket(t, 1, 1)
	checkInvalid(t, b.SetRate(math.NaN()), "rate")
	checkInvalid(t, b.SetCapacity(-1), "capacity")
	checkInvalid(t, b.Acquire(context.Background(), -1), "n")
	if b.Rate() != 1 || b.Capacity() != 1 {
		t.Fatalf("a refused setter changed the bucket: rate %v capacity %v", b.Rate(), b.Capacity())
	}
}

// waitQueued waits until every goroutine of the test's bubble is blocked
// (synctest.Wait), then checks that n callers are queued in b.Acquire.
func waitQueued(t *testing.T, b *pacer.TokenBucket, n int64) {
	t.Helper()
	synctest.Wait()
	if got := pacer.Waiters(b); got != n {
		t.Fatalf("%d callers queued, want %d", got, n)
	}
}

// waitNext waits until every goroutine of the test's bubble is blocked,
// then checks that the clock's only timer is due at want: a waiter that
// recomputes its due time stops its old timer and makes a new one in its
// own goroutine.
func waitNext(t *testing.T, clk *testutil.Clock, want time.Time) {
	t.Helper()
	synctest.Wait()
	if next, ok := clk.Next(); !ok || !next.Equal(want) || clk.Timers() != 1 {
		t.Fatalf("earliest timer due at t0+%v (%d timers), want t0+%v", next.Sub(t0), clk.Timers(), want.Sub(t0))
	}
}

func checkInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, pacer.ErrInvalid) {
		t.Fatalf("err = %v, want one wrapping ErrInvalid", err)
	}
	var fe *pacer.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *pacer.FieldError", err, err)
	}
	if fe.Field != field {
		t.Fatalf("error %q names field %q, want %q", err, fe.Field, field)
	}
	if want := "pacer: " + field + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q does not start with %q", err, want)
	}
}

func TestFieldErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := pacer.New(pacer.Config{Rate: -1})
	if got, want := fmt.Sprint(err), "pacer: rate: -1: want a number ≥ 1e-08 and ≤ 1e+09 per second"; got != want {
		t.Errorf("New(Config{Rate: -1}) = %q, want %q", got, want)
	}
	if !errors.Is(err, pacer.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var fe *pacer.FieldError
	if !errors.As(err, &fe) || fe.Field != "rate" || fe.Value != -1.0 {
		t.Errorf("errors.As(%v) = %+v, want Field rate, Value -1", err, fe)
	}
	adapter := &pacer.FieldError{Pkg: "redisbucket", Field: "key", Value: `""`, Want: "a name"}
	if got, want := adapter.Error(), `redisbucket: key: "": want a name`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
