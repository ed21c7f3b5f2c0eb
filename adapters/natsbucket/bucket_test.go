package natsbucket_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/pacer"
)

func TestNewRejectsBadConfig(t *testing.T) {
	_, js := connect(t)
	kv := newKV(t, js)
	for _, tc := range []struct {
		name  string
		c     natsbucket.Config
		field string
	}{
		{"no key", natsbucket.Config{Rate: 10}, "key"},
		{"a key with a space", natsbucket.Config{Key: "a b", Rate: 10}, "key"},
		{"a key with a trailing dot", natsbucket.Config{Key: "a.", Rate: 10}, "key"},
		{"zero rate", natsbucket.Config{Key: "k"}, "rate"},
		{"negative burst", natsbucket.Config{Key: "k", Rate: 10, Burst: -1}, "burst"},
		{"lease time too long", natsbucket.Config{Key: "k", Rate: 10, LeaseTime: time.Minute}, "lease_time"},
		{"expected workers negative", natsbucket.Config{Key: "k", Rate: 10, ExpectedWorkers: -1}, "expected_workers"},
		{"a prefix with a star", natsbucket.Config{Key: "k", Rate: 10, Prefix: "a*"}, "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := natsbucket.New(kv, tc.c)
			var fe *pacer.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, pacer.ErrInvalid) {
				t.Fatalf("New(%+v) = %v, want a FieldError on %q", tc.c, err, tc.field)
			}
			if err := tc.c.Check(); err == nil || err.Error() != fe.Error() {
				t.Errorf("Check() = %v, want New's error %v", err, fe)
			}
		})
	}
	if _, err := natsbucket.New(nil, natsbucket.Config{Key: "k", Rate: 1}); !errors.Is(err, pacer.ErrInvalid) {
		t.Errorf("New(nil, …) = %v, want ErrInvalid", err)
	}
}

// A bucket that does not exist (deleted under the handle), or a key that
// holds something other than a schedule: NATS answers, and will never
// hold the fleet there: New fails with ErrRefused.
func TestNewFailsWhenNATSRefuses(t *testing.T) {
	_, js := connect(t)
	t.Run("no such bucket", func(t *testing.T) {
		kv := newKV(t, js)
		if err := js.DeleteKeyValue(context.Background(), kv.Bucket()); err != nil {
			t.Fatal(err)
		}
		_, err := natsbucket.New(kv, natsbucket.Config{Key: "k", Rate: 10})
		if !errors.Is(err, natsbucket.ErrRefused) {
			t.Fatalf("New on a deleted bucket = %v, want ErrRefused", err)
		}
	})
	t.Run("a key that is not a schedule", func(t *testing.T) {
		kv := newKV(t, js)
		if _, err := kv.Put(context.Background(), "fleet.k", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		_, err := natsbucket.New(kv, natsbucket.Config{Key: "k", Rate: 10})
		if !errors.Is(err, natsbucket.ErrRefused) {
			t.Fatalf("New on a key holding %q = %v, want ErrRefused", "hello", err)
		}
	})
}

func TestWaitArgumentsCancelAndClose(t *testing.T) {
	_, js := connect(t)
	b := newBucket(t, newKV(t, js), natsbucket.Config{Key: "k", Rate: 1})
	ctx := context.Background()
	if err := b.Wait(ctx, 0); !errors.Is(err, pacer.ErrInvalid) {
		t.Errorf("Wait(ctx, 0) = %v, want ErrInvalid", err)
	}
	if err := b.Wait(ctx, 1); err != nil { // the burst
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Wait(cctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a 50ms deadline at 1/s = %v, want DeadlineExceeded", err)
	}
	if s := b.Stats(); s.Dispatched != 1 || s.Mode != natsbucket.ModeNATS {
		t.Errorf("Stats() = %+v, want 1 dispatched, mode nats", s)
	}
	b.Close()
	if err := b.Wait(ctx, 1); !errors.Is(err, natsbucket.ErrClosed) {
		t.Errorf("Wait after Close = %v, want ErrClosed", err)
	}
	b.Close()
}

// At 2,000/s one worker gets the rate within 3 %, with at most 0.05 NATS
// requests a job (reads, writes and clock reads together).
func TestLeasesBatchNATSCalls(t *testing.T) {
	_, js := connect(t)
	const rate = 2000.0
	b := newBucket(t, newKV(t, js), natsbucket.Config{Key: "k", Rate: rate})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got := drain(ctx, b, 2)
	s := b.Stats()
	perJob := float64(s.Requests) / float64(got)
	t.Logf("%d tokens in 1s at %g/s; %+v; %.4f requests per job", got, rate, s, perJob)
	if float64(got) < rate*0.97 || float64(got) > rate*1.03+1 {
		t.Errorf("got %d tokens in 1s at %g/s, want %g ± 3%%", got, rate, rate)
	}
	if perJob > 0.05 {
		t.Errorf("%d NATS requests for %d tokens = %.3f per job, want ≤ 0.05", s.Requests, got, perJob)
	}
}

// Two Buckets on one key (two workers) share the rate: together they get
// it, each a fair part, and their compare-and-set conflicts are retried.
func TestTwoWorkersShareTheRate(t *testing.T) {
	_, js := connect(t)
	kv := newKV(t, js)
	const rate, dur = 300.0, 2 * time.Second
	a := newBucket(t, kv, natsbucket.Config{Key: "k", Rate: rate})
	b := newBucket(t, kv, natsbucket.Config{Key: "k", Rate: rate})
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	counts := make(chan int64, 2)
	for _, x := range []*natsbucket.Bucket{a, b} {
		go func() { counts <- drain(ctx, x, 1) }()
	}
	n1, n2 := <-counts, <-counts
	want := rate * dur.Seconds()
	sa, sb := a.Stats(), b.Stats()
	t.Logf("%d + %d = %d of %.0f; workers seen %d, %d; conflicts %d, %d", n1, n2, n1+n2, want, sa.Workers, sb.Workers, sa.Conflicts, sb.Conflicts)
	if got := float64(n1 + n2); got < want*0.95 || got > want*1.03+2 {
		t.Errorf("two workers at %g/s got %d in %v, want %.0f (−5 %%, +3 %%)", rate, n1+n2, dur, want)
	}
	if min(n1, n2) < (n1+n2)/4 {
		t.Errorf("shares %d and %d, want each ≥ 25 %%", n1, n2)
	}
	if sa.Workers != 2 || sb.Workers != 2 {
		t.Errorf("workers seen %d and %d, want 2", sa.Workers, sb.Workers)
	}
}

// A connection that is gone: the Bucket falls back to its local share,
// Wait still paces (at Rate ÷ ExpectedWorkers), and says why in Stats.
func TestFallsBackWhenNATSIsGone(t *testing.T) {
	nc, js := connect(t)
	kv := newKV(t, js)
	nc.Close()
	b := newBucket(t, kv, natsbucket.Config{Key: "k", Rate: 100, ExpectedWorkers: 4, Timeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got := drain(ctx, b, 1)
	s := b.Stats()
	t.Logf("%d tokens in 1s; %+v", got, s)
	if s.Mode != natsbucket.ModeFallback || s.FallbackSince.IsZero() || s.LastError == "" || s.Fallbacks != 1 {
		t.Errorf("Stats() = %+v, want fallback with its time and error", s)
	}
	if got < 20 || got > 27 { // 25/s, burst 1
		t.Errorf("got %d tokens in 1s on a share of 25/s, want 20–27", got)
	}
}

// Unused leased slots go back to the key on Close, so another worker can
// take them at once.
func TestUnusedLeasesGoBackOnClose(t *testing.T) {
	_, js := connect(t)
	kv := newKV(t, js)
	const rate = 1000.0
	a := newBucket(t, kv, natsbucket.Config{Key: "k", Rate: rate})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	drain(ctx, a, 1)
	cancel()
	a.Close()
	s := a.Stats()
	t.Logf("%+v", s)
	if s.Returned == 0 {
		t.Errorf("Stats().Returned = 0 after Close of a busy worker, want the leased tail given back")
	}
	if s.Granted != s.Dispatched+s.Expired+s.Returned {
		t.Errorf("granted %d ≠ dispatched %d + expired %d + returned %d", s.Granted, s.Dispatched, s.Expired, s.Returned)
	}
}
