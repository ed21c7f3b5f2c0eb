// Package natspacer paces NATS consumers with a pacer.Pacer.
//
// Consume is a paced JetStream pull consumer. JetStream cannot pace a pull
// consumer in messages per second (the server's rate limit is for push
// consumers, in bits), and pacing the handler of a plain Consume lets the
// messages in its prefetch buffer outlive their AckWait and be delivered
// again (nats.go issue 1929). Consume turns that around: it acquires a
// permit per message first, and fetches only as many messages as it holds
// permits, so a message is fetched when it may start. Outcomes become
// acks, naks with the retry-after delay (a throttled or unavailable
// downstream lowers the pace) or naks with backoff; InProgress keeps long work
// from being redelivered; Stop drains without losing anything.
//
// Probe reads the consumer's backlog for the pacer's controller, from the
// NumPending every delivered message carries, and calls Consumer.Info only
// when no message has arrived since its last sample.
//
// Subscribe is a paced core NATS subscription with a bounded buffer. Core
// NATS is at-most-once, so what does not fit is dropped: each drop is
// counted in Stats and logged, never silent.
//
// Tests run against a real nats-server: testenv.NATS starts one embedded,
// with JetStream, or uses NATS_URL.
package natspacer
