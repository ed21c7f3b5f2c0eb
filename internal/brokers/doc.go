// Package brokers holds the Redis and NATS settings of a run and builds
// every connection from them, in one place: Asynq's RedisConnOpt (a
// single server, a Redis Cluster or a Sentinel-managed primary, with TLS
// and an ACL user) for the asynq source, its backlog probe and pacer
// enqueue; go-redis clients for the fleets and pacer check --connect; and
// the NATS connection (a server list, creds, nkey, user and password or
// token, TLS, reconnecting for ever) that the jetstream and nats sources
// share and pacer publish opens. RedisTarget and NATSTarget describe the
// servers for logs and errors without a password, token or seed.
//
// The address "embedded" starts an in-process broker through a StartFunc
// that package embedded registers; only the pacer command links it.
package brokers
