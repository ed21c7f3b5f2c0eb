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
// from being redelivered; Drain ends it without losing anything, and Stop
// ends it at once, nakking what has not started for redelivery. A nak is a
// delivery the consumer's MaxDeliver counts: a throttled message on its
// last two deliveries is held and retried in place instead, so throttling
// alone never uses up a job's deliveries (ConsumeStats.HeldInPlace). The
// handler's start marks each permit (pacer.Permit.Start), so that a pacer
// with a learned concurrency limit measures the downstream's latency, not
// the wait for a message.
//
// # The window
//
// Consume needs no tuning: it sizes its own window, the messages it lets
// run ahead of its handlers (permits being acquired, waiting to be fetched
// or in a Fetch, and messages received that wait for a handler). The
// window starts at 2 and
//
//   - doubles after a Fetch that came back full while the pace was
//     starved: a gatherer held back by the window found, when let go, a
//     permit already due and no message waiting for a handler;
//   - shrinks by a quarter when a message waited for a handler longer
//     than two fetch round trips (measured on full fetches; at least 5ms),
//     and to 2 when one waited a quarter of AckWait;
//   - holds no more than the pace gives in four rounds of BatchLinger and
//     fetch round trip (counted up to 10ms), plus 2: more would only let
//     permits pile up while a fetch stalls and arrive as a burst of
//     messages (but at least Concurrency, as many as may start at once
//     anyway);
//   - while messages wait for a handler, holds no more than the handlers
//     start in a quarter of AckWait, at the rate measured over the last
//     100ms or more;
//   - never exceeds MaxInFlight (default 1000) or the consumer's
//     MaxAckPending, which bound the messages held in all.
//
// So it settles at about what keeps the pace busy for a fetch round trip
// or two: at an unlimited pace it grows until the handlers, not the round
// trips, bound the throughput; at a low pace with slow handlers a few
// messages wait, each for much less than its AckWait. ConsumeStats.Window
// and Waiting show it. MaxInFlight and MaxBatch are upper bounds a caller
// may set, not tuning a caller must do.
//
// Probe reads the consumer's backlog for the pacer's controller, from the
// NumPending every delivered message carries, and calls Consumer.Info only
// when no message has arrived since its last sample.
//
// Subscribe is a paced core NATS subscription with a bounded buffer. Core
// NATS is at-most-once, so what does not fit is dropped: each drop is
// counted in Stats and logged, never silent.
//
// Consume's options are ConsumeOptions, Subscribe's SubscribeOptions;
// Concurrency, Logger and WithClock are Options, accepted by both.
//
// Tests run against a real nats-server: testenv.NATS starts one embedded,
// with JetStream, or uses NATS_URL.
package natspacer
