// Package embedded starts in-process brokers for the address "embedded"
// of config.toml: miniredis for Redis, nats-server with JetStream for
// NATS. Importing it registers them with package brokers; the pacer
// command does, so that a binary built on package worker links neither.
package embedded
