package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/pacer"
)

// Limit is a fleet's shared limit in this process, whichever store holds
// it: a pacer.Limiter and pacer.Refunder the workers that name the fleet
// obey.
type Limit interface {
	pacer.Limiter
	pacer.Refunder
	SetRate(rate float64) error
	Close()
	// Info is the limit's state for status, samples and logs.
	Info() Info
}

// Info is what a Limit reports, store-neutral.
type Info struct {
	Store         string // "redis" or "nats"
	Mode          string // redis/nats, fallback or rejoining
	Rate          float64
	Workers       int // processes seen sharing the fleet
	Share         float64
	Dispatched    uint64
	Calls         uint64 // lease calls to the store
	Requests      uint64 // requests they made (Redis: one each)
	Errors        uint64
	Fallbacks     uint64
	FallbackSince time.Time
	LastError     string
}

type redisLimit struct{ *redisbucket.Bucket }

func (l redisLimit) Info() Info {
	s := l.Stats()
	return Info{Store: config.StoreRedis, Mode: s.Mode.String(), Rate: s.Rate, Workers: s.Workers, Share: s.Share,
		Dispatched: s.Dispatched, Calls: s.Calls, Requests: s.Calls, Errors: s.Errors, Fallbacks: s.Fallbacks,
		FallbackSince: s.FallbackSince, LastError: s.LastError}
}

type natsLimit struct {
	*natsbucket.Bucket
	nc *nats.Conn
}

func (l natsLimit) Info() Info {
	s := l.Stats()
	return Info{Store: config.StoreNATS, Mode: s.Mode.String(), Rate: s.Rate, Workers: s.Workers, Share: s.Share,
		Dispatched: s.Dispatched, Calls: s.Calls, Requests: s.Requests, Errors: s.Errors, Fallbacks: s.Fallbacks,
		FallbackSince: s.FallbackSince, LastError: s.LastError}
}

func (l natsLimit) Close() {
	l.Bucket.Close()
	l.nc.Close()
}

// joinNATS opens the fleet fc in its key-value bucket on the NATS of b,
// creating the bucket (History 1) if it does not exist. Its own
// connection, so that a fleet's calls do not queue behind a source's.
func joinNATS(fc config.Fleet, b *brokers.Brokers, c natsbucket.Config) (Limit, string, error) {
	nc, err := b.ConnectNATS("pacer fleet " + fc.Name)
	if err != nil {
		return nil, "", err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, fc.KV())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fc.KV(), History: 1,
			Description: "pacer fleet limits (package natsbucket)"})
		if errors.Is(err, jetstream.ErrBucketExists) { // another process created it meanwhile
			kv, err = js.KeyValue(ctx, fc.KV())
		}
	}
	if err != nil {
		nc.Close()
		return nil, "", fmt.Errorf("key-value bucket %q: %w", fc.KV(), err)
	}
	bk, err := natsbucket.New(kv, c)
	if err != nil {
		nc.Close()
		return nil, "", err
	}
	return natsLimit{Bucket: bk, nc: nc}, b.NATSTarget() + " kv " + fc.KV(), nil
}
