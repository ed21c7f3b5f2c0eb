// Package fleettest holds the fleet limits' fault tests that need servers
// of their own (internal/testenv): a nats-server stopped and started
// under a running NATS fleet, and a 3-server NATS cluster that loses a
// server. The fleets run through the adapters' exported API only. The
// package has no code of its own; go test ./internal/fleettest/ runs it.
package fleettest
