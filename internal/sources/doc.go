// Package sources registers the built-in source kinds of config.toml:
// asynq (an Asynq queue, on Redis), jetstream (a JetStream stream) and
// nats (a core NATS subject). Each takes its settings from its own
// [worker.source] table and its broker connection from the run's
// brokers.Brokers, which the runner hands over through UseBrokers.
package sources
