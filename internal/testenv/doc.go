// Package testenv holds what only this repository's tests share: real
// Redis and NATS servers for integration tests (Redis, RedisProcess, NATS),
// and small helpers (WaitFor, NewPacer, UniqueName, SyncBuffer). What a
// user of the library needs in a test is in package testutil, which
// imports no server.
package testenv
