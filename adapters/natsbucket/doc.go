// Package natsbucket is a token bucket shared by a whole fleet of worker
// processes, held in a NATS JetStream key-value bucket: the same fleet
// limit as redisbucket, for a team whose only broker is NATS. A Bucket
// implements pacer.Limiter and pacer.Refunder, so a pacer.Pacer obeys it
// after its own ceiling:
//
//	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "pacer_fleet"})
//	b, err := natsbucket.New(kv, natsbucket.Config{Key: "sms", Rate: 100})
//	defer b.Close()
//	p, err := pacer.New(pacer.Config{Rate: 100, Limiter: b})
//
// Workers whose Config has the same Key in the same key-value bucket share
// the limit; the CLI sets Key from a [fleet.NAME] table whose store is
// "nats".
//
// # The same contract as redisbucket
//
// The lease machinery is redisbucket's, shared code (leases sized to
// demand and held to an equal share, slots handed out at their due times,
// unused slots expiring and given back, refunds, the outage fallback at
// Rate ÷ max(ExpectedWorkers, workers seen, 1) and the rejoining limit):
// redisbucket's package doc describes it and states the bound, which holds
// here with the same terms. What differs is the store.
//
// # The store: one key, compare-and-set
//
// The schedule (the GCRA "zero", the rate and burst it is kept under, and
// the workers seen lately with their last time) is one JSON value under
// the key Prefix+Key. A lease reads it, computes the grant exactly as
// redisbucket's script does, and writes it back with KeyValue.Update at
// the revision it read; when another worker wrote in between, the update
// fails (jetstream.ErrKeyRevisionMismatch) and the lease reads and
// computes again (Stats.Conflicts), up to 16 times within Timeout. So a
// slot is granted to one worker only, as in Redis. A lease costs two NATS
// requests (Stats.Requests), more on a conflict.
//
// # Clock
//
// The schedule is kept on the server's clock, not the workers': each
// worker writes a key of its own (Prefix+Key+".clock."+id) and reads back
// the time JetStream stamped on it, which lies between the write's start
// and its acknowledgement; the offset from the shortest of the last four
// such round trips converts the schedule's times to the local clock, so
// worker clocks may be skewed (ε, the offset's error, is at most half that
// round trip). It is read on the first lease and again every 5 s. In a
// cluster the stamp is the stream leader's clock; a new leader whose clock
// differs moves the schedule by the difference (keep the servers' clocks
// in sync, as NTP does).
//
// # Outage
//
// A failed or timed-out call (a nats-server killed, a cluster without a
// quorum for the bucket's stream) drops the worker to its local share,
// logged with log/slog and shown in Stats; it tries again every
// RetryInterval and rejoins as redisbucket does. New reads the bucket's
// status first: a bucket that does not exist, JetStream not enabled, no
// permission, or a key that holds something other than a schedule fail New
// with an error wrapping ErrRefused. Bad settings are errors wrapping
// pacer.ErrInvalid that name the field, its value and what is allowed.
//
// # The key-value bucket
//
// Any bucket will do; History 1 is enough, and Replicas 3 in a cluster
// lets the fleet keep its schedule when a server is lost. Keys do not
// expire: the schedule is one small value (about 60 bytes per worker seen
// within the last 2 s, or 10 × LeaseTime), and a worker deletes its clock
// key at Close (one killed leaves its clock key behind, a few bytes).
package natsbucket
