package pacer_test

import (
	"errors"
	"testing"

	"github.com/jobpacer/pacer/pacer"
)

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	c, err := pacer.Config{Rate: 20}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Burst != pacer.DefaultBurst || c.Base != 20 || c.BaseBurst != pacer.DefaultBurst ||
		c.MinFactor != pacer.DefaultMinFactor || c.MaxFactor != pacer.DefaultMaxFactor ||
		c.BacklogTarget != pacer.DefaultBacklogTarget || c.BacklogHigh != 20*pacer.DefaultBacklogTarget.Seconds() ||
		c.Period != pacer.DefaultControllerPeriod || c.Cut != pacer.DefaultCut ||
		c.DefaultRetryAfter != pacer.DefaultRetryAfter || len(c.AdjMap) != len(pacer.DefaultAdjMap()) {
		t.Errorf("Config{Rate: 20}.WithDefaults() = %+v, want every default applied", c)
	}
	for _, tt := range []struct {
		name  string
		c     pacer.Config
		field string
	}{
		{"a fractional burst", pacer.Config{Rate: 5, Burst: 5.5}, "burst"},
		{"a burst below one job", pacer.Config{Rate: 5, Burst: 0.5}, "burst"},
		{"a fractional base burst", pacer.Config{Rate: 5, Burst: 4, BaseBurst: 2.5}, "base_burst"},
		{"min_factor above max_factor: the base bucket's check", pacer.Config{Rate: 5, MinFactor: 2, MaxFactor: 1.5}, "min_factor"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.WithDefaults()
			var fe *pacer.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, pacer.ErrInvalid) {
				t.Fatalf("WithDefaults() = %v, want a *FieldError for %s", err, tt.field)
			}
			if _, err := pacer.New(tt.c); err == nil {
				t.Errorf("New accepts what WithDefaults refuses")
			}
		})
	}
}
