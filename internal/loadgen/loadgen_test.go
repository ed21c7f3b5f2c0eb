package loadgen_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobpacer/pacer/internal/loadgen"
)

func TestRun(t *testing.T) {
	t.Parallel()
	t.Run("sends count jobs with {n} numbered from 1", func(t *testing.T) {
		g, err := loadgen.New(loadgen.Config{Count: 3, Payload: `{"n":{n}}`})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		sent, _, err := g.Run(context.Background(), func(_ context.Context, p []byte) error {
			got = append(got, string(p))
			return nil
		})
		if err != nil || sent != 3 {
			t.Fatalf("Run() = %d, %v; want 3, nil", sent, err)
		}
		if want := []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("payloads %q, want %q", got, want)
		}
	})
	t.Run("at rate 10, 21 jobs take 2 s on the bubble's clock", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g, err := loadgen.New(loadgen.Config{Count: 21, Rate: 10})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			sent, _, err := g.Run(context.Background(), func(context.Context, []byte) error { return nil })
			if err != nil || sent != 21 {
				t.Fatalf("Run() = %d, %v; want 21, nil", sent, err)
			}
			if got, want := time.Since(start), 2*time.Second; got != want {
				t.Errorf("21 jobs at rate 10 took %v, want %v (the first at once)", got, want)
			}
		})
	})
	t.Run("a send error stops it and names the job by the count sent", func(t *testing.T) {
		g, _ := loadgen.New(loadgen.Config{Count: 5})
		boom := errors.New("boom")
		n := 0
		sent, _, err := g.Run(context.Background(), func(context.Context, []byte) error {
			if n++; n == 3 {
				return boom
			}
			return nil
		})
		if sent != 2 || !errors.Is(err, boom) {
			t.Errorf("Run() = %d, %v; want 2, boom", sent, err)
		}
	})
	t.Run("a cancelled ctx stops it without an error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g, _ := loadgen.New(loadgen.Config{Count: 100, Rate: 1})
			ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
			defer cancel()
			sent, _, err := g.Run(ctx, func(context.Context, []byte) error { return nil })
			if sent != 3 || err != nil {
				t.Errorf("Run() = %d, %v; want 3 (at 0, 1 and 2 s), nil", sent, err)
			}
		})
	})
	t.Run("a rate above pacer.MaxRate or a count below 1 is an error", func(t *testing.T) {
		for _, c := range []loadgen.Config{{Count: 1, Rate: 2e9}, {Count: 0}} {
			if _, err := loadgen.New(c); err == nil {
				t.Errorf("New(%+v) = nil error, want one", c)
			}
		}
	})
}
