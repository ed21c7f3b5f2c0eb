// Package brokers holds the Redis and NATS settings of a run and the
// connections its built-in sources share. The address "embedded" starts
// an in-process broker through a StartFunc that package embedded
// registers; only the pacer command links it.
package brokers
