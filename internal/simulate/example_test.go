package simulate_test

import (
	"fmt"
	"time"

	"github.com/jobpacer/pacer/internal/simulate"
	"github.com/jobpacer/pacer/pacer"
)

// Simulate shows what a setting does before it is deployed: here a burst
// three times the base pace lifts the factor to the ceiling (20/s ÷ 5/s),
// and the backlog drains.
func ExampleSimulate() {
	sc, _ := simulate.ScenarioByName("burst")
	samples, err := simulate.Simulate(pacer.Config{Rate: 20, Base: 5, Burst: 5, BacklogTarget: 4 * time.Second}, sc, 2*time.Minute)
	if err != nil {
		panic(err)
	}
	peak := 0.0
	for _, s := range samples {
		peak = max(peak, s.Factor)
	}
	last := samples[len(samples)-1]
	fmt.Printf("peak factor %g, backlog at the end %d, all done: %v\n", peak, last.Backlog, last.Done == last.Arrived)
	// Output: peak factor 4, backlog at the end 0, all done: true
}
