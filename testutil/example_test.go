package testutil_test

import (
	"fmt"
	"time"

	"github.com/jobpacer/pacer/pacer"
	"github.com/jobpacer/pacer/testutil"
)

// A Pacer on a fake clock: time moves only when the test advances it, so
// what the pacer admits is exact.
func ExampleClock() {
	clk := testutil.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p, err := pacer.New(pacer.Config{Rate: 10, Clock: clk}) // burst 1, one job every 100ms
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	for range 3 {
		pm, ok := p.TryAcquire(1)
		fmt.Println(clk.Now().Format("15:04:05.000"), ok)
		pm.Done(nil) // a nil *Permit (refused) does nothing
		clk.Advance(50 * time.Millisecond)
	}
	// Output:
	// 00:00:00.000 true
	// 00:00:00.050 false
	// 00:00:00.100 true
}
