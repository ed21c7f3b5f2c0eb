package config

import (
	"fmt"
	"time"

	"github.com/jobpacer/pacer/pacer"
)

// Duration is a time.Duration written with its unit in the file ("10s",
// "250ms"); a bare number is an error, so 10 never silently means 10ns.
type Duration time.Duration

// UnmarshalText parses a duration with a unit.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: want a number with a unit, such as \"10s\" or \"250ms\"", b)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Latency is a worker's latency_target: a duration with its unit, or
// "auto" (pacer.LatencyAuto): a learned concurrency limit held near the
// downstream's no-load latency.
type Latency time.Duration

// UnmarshalText parses a duration with a unit, or "auto".
func (l *Latency) UnmarshalText(b []byte) error {
	if string(b) == "auto" {
		*l = Latency(pacer.LatencyAuto)
		return nil
	}
	var d Duration
	if err := d.UnmarshalText(b); err != nil {
		return fmt.Errorf("%q is neither \"auto\" nor a duration: want \"auto\" or a number with a unit, such as \"50ms\"", b)
	}
	*l = Latency(d)
	return nil
}

// String formats l as it is written: "auto" or a duration.
func (l Latency) String() string {
	if time.Duration(l) == pacer.LatencyAuto {
		return "auto"
	}
	return time.Duration(l).String()
}

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }
