// Package lease is the lease machinery shared by the fleet limits
// redisbucket and natsbucket: a worker leases runs of slots of a fleet's
// shared schedule from a Store, hands them out locally at their due times,
// gives back what it does not use, refunds cancelled permits, and falls
// back to a local share of the rate when the store is away. Each adapter
// supplies the Store (where and how the schedule is changed atomically) and
// its exported API; the behaviour, the bounds and the Stats are this
// package's, documented in redisbucket's package doc.
package lease
