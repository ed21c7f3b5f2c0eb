// Package faults holds the fault suite: its tests build cmd/pacer, run the
// binary against a redis-server and a nats-server of their own (on free
// ports) and a counting HTTP server, send jobs with unique payloads, and
// check that every job sent is received, whatever fault they inject:
// SIGKILL, SIGTERM, a Redis or nats-server restart, a downstream that
// fails, throttles, hangs or is down for a while. Other tests check one
// defect each (an orphaned command after shutdown, idle admin
// connections, a deleted consumer, absurd settings, a password in the
// output, a bad task type). Each scenario logs its counts in one line
// starting "faults:", the source of docs/reliability.md's table.
//
// The package has no code of its own; go test ./internal/faults/ runs it.
package faults
