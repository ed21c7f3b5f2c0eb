// Package cli is the pacer command on urfave/cli: run (run.go), check,
// status, simulate, and the load generators enqueue and publish (load.go).
// Package worker's Main runs it; nothing outside this package sees
// urfave/cli.
package cli
