// Package runner runs the workers of a config: for each, its source
// (connected through the run's Brokers or its own table), its pacer and
// its sink; the fleets the workers share (fleet.go); the admin server;
// the demo producer; and the status log. Reload applies new pace settings
// in place; the end of Run's context drains.
//
// Goroutines of a Run: one per source (Source.Run), one per pacer
// (Pacer.Run, the controller), one per meter, the admin server, the
// status log and, with a demo rate, one demo producer per worker. Run
// waits for all of them before it returns.
package runner
