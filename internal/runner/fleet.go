package runner

import (
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/status"
)

// fleetRun is a [fleet.NAME] limit in a run: one redisbucket.Bucket,
// shared by every worker of the run that names the fleet (a Bucket is one
// member of the fleet in Redis, so a process has one per key).
type fleetRun struct {
	cfg    config.Fleet // guarded by Runner.mu after Run has started the workers
	rdb    *redis.Client
	bucket *redisbucket.Bucket
	users  []string // names of the workers that use it, in config order
}

// openFleets makes the bucket of every fleet that a worker of f names, on
// the Redis of f's [redis] (the embedded one if its addr is "embedded").
// A Redis that cannot be reached is not an error: the bucket starts at
// its local share and rejoins when Redis answers. A Redis that refuses
// the bucket's script is.
func (r *Runner) openFleets(f *config.File) error {
	fleets := map[string]*fleetRun{}
	r.mu.Lock()
	r.fleets = fleets
	r.mu.Unlock()
	for _, w := range f.Workers {
		if w.Fleet == "" {
			continue
		}
		if fr := fleets[w.Fleet]; fr != nil {
			r.mu.Lock()
			fr.users = append(fr.users, w.Name)
			r.mu.Unlock()
			continue
		}
		fc := f.Fleets[w.Fleet]
		addr, err := r.brokers.RedisAddr()
		if err != nil {
			return fmt.Errorf("fleet %q: %w", fc.Name, err)
		}
		if f.Redis.Addr == brokers.Embedded {
			r.log.Warn("fleet on the embedded Redis: only the workers of this process share it; set [redis] addr to share it with other processes",
				"fleet", fc.Name)
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr, Password: f.Redis.Password, DB: f.Redis.DB, ContextTimeoutEnabled: true})
		bc := fc.Bucket()
		bc.Logger = r.log.With("fleet", fc.Name)
		b, err := redisbucket.New(rdb, bc)
		if err != nil {
			_ = rdb.Close()
			return fmt.Errorf("fleet %q on redis %s: %w", fc.Name, addr, err)
		}
		st := b.Stats()
		r.log.Info("fleet joined", "fleet", fc.Name, "rate", fc.Rate, "mode", st.Mode.String(), "processes", st.Workers, "redis", addr)
		r.mu.Lock()
		fleets[w.Fleet] = &fleetRun{cfg: fc, rdb: rdb, bucket: b, users: []string{w.Name}}
		r.mu.Unlock()
	}
	return nil
}

// closeFleets closes the buckets (giving leased tokens not used back to
// Redis) and their Redis clients. The workers' pacers are closed first.
func (r *Runner) closeFleets() {
	r.mu.Lock()
	fleets := r.fleets
	r.mu.Unlock()
	for _, name := range sortedKeys(fleets) {
		fr := fleets[name]
		fr.bucket.Close()
		_ = fr.rdb.Close()
		st := fr.bucket.Stats()
		r.log.Info("fleet left", "fleet", name, "dispatched", st.Dispatched, "redis_calls", st.Calls, "fallbacks", st.Fallbacks)
	}
}

// fleetStatus returns the state of the run's fleets. It requires r.mu held.
func (r *Runner) fleetStatus() []status.FleetStatus {
	var out []status.FleetStatus
	for _, name := range sortedKeys(r.fleets) {
		fr := r.fleets[name]
		st := fr.bucket.Stats()
		fs := status.FleetStatus{
			Name: name, Mode: st.Mode.String(), Rate: st.Rate, Processes: st.Workers, Share: st.Share,
			Workers: slices.Clone(fr.users), Dispatched: st.Dispatched, RedisCalls: st.Calls, RedisErrors: st.Errors,
			Fallbacks: st.Fallbacks, LastError: st.LastError,
		}
		if !st.FallbackSince.IsZero() {
			t := st.FallbackSince
			fs.FallbackSince = &t
		}
		out = append(out, fs)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
