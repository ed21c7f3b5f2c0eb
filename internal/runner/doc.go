// Package runner runs the workers of a config: for each, its source
// (connected through the run's brokers.Brokers or its own table), its
// pacer and its sink, with the fleet limits they share (package fleet),
// the admin server (package admin), the demo producer and the status log.
// Each worker keeps its last 5 minutes of state, a sample a second
// (history.go), which the admin server serves on /samples for the
// dashboard. Reload applies new pace settings in place (reload.go); the
// end of Run's context drains.
//
// Goroutines of a Run: one per source (Source.Run, restarted by
// supervise when it fails), one per pacer (Pacer.Run, the controller), one
// sampler per worker (its history), the admin server, the status log and,
// with a demo rate, one demo producer per worker. Run waits for all of
// them before it returns.
package runner
