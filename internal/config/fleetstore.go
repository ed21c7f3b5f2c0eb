package config

import (
	"fmt"

	"github.com/jobpacer/pacer/adapters/natsbucket"
)

// Where a [fleet.NAME] is held: Fleet.Store.
const (
	StoreRedis = "redis" // package redisbucket, on the Redis of [redis] (the default)
	StoreNATS  = "nats"  // package natsbucket, in a JetStream key-value bucket on [nats]
)

// NATSBucket returns the natsbucket.Config of a fleet whose store is
// "nats" (without Logger and Clock).
func (fl *Fleet) NATSBucket() natsbucket.Config {
	return natsbucket.Config{
		Key: fl.Name, Rate: fl.Rate, Burst: fl.Burst, ExpectedWorkers: fl.ExpectedWorkers,
		LeaseTime: fl.LeaseTime.D(), RetryInterval: fl.RetryInterval.D(), Timeout: fl.Timeout.D(), Prefix: fl.Prefix,
	}
}

// KV returns the key-value bucket of a fleet whose store is "nats".
func (fl *Fleet) KV() string {
	if fl.KVBucket == "" {
		return natsbucket.DefaultBucket
	}
	return fl.KVBucket
}

// checkFleetStore checks a fleet's store key. For store = "nats" it checks
// the fleet with natsbucket's rules, keeps its settings and reports done;
// for "redis" (or no store) it leaves the fleet to the Redis checks.
func (f *File) checkFleetStore(fl *Fleet, at, label string) (done bool, errs Errors) {
	switch fl.Store {
	case "", StoreRedis:
		if fl.KVBucket != "" {
			return true, Errors{f.errAt(at+".kv_bucket", label+" kv_bucket", fmt.Sprintf("%q: only a fleet with store = \"nats\" has a key-value bucket; add store = \"nats\", or leave kv_bucket out", fl.KVBucket))}
		}
		return false, nil
	case StoreNATS:
	default:
		return true, Errors{f.errAt(at+".store", label+" store", fmt.Sprintf("%q: want \"redis\" (the Redis of [redis], the default) or \"nats\" (a JetStream key-value bucket on [nats])", fl.Store))}
	}
	raw := fl.NATSBucket()
	s, bad := checkEach(f, raw, natsbucket.Config.WithDefaults, at, label)
	if len(bad) > 0 {
		return true, bad
	}
	if e := f.zeroKeys(raw, s, at, label); e != nil {
		return true, Errors{e}
	}
	s.Logger, s.Clock = nil, nil
	fl.NATSSettings = s
	fl.Settings.Key, fl.Settings.Rate = s.Key, s.Rate
	f.Fleets[fl.Name] = *fl
	f.fleetOK[fl.Name] = true
	return true, nil
}
