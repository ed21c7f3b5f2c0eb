package fleet

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/config"
	"github.com/jobpacer/pacer/internal/status"
)

// member is a [fleet.NAME] limit in a run: one redisbucket.Bucket,
// shared by every worker of the run that names the fleet (a Bucket is one
// member of the fleet in Redis, so a process has one per key).
type member struct {
	cfg   config.Fleet          // guarded by Set.mu
	rdb   redis.UniversalClient // nil for a fleet on NATS
	limit Limit
	users []string // names of the workers that use it, in config order
}

// Set is the fleet limits of a run, by name. It is safe for concurrent
// use.
type Set struct {
	log *slog.Logger

	mu      sync.Mutex // guards each member's cfg
	members map[string]*member
}

// Open makes the bucket of every fleet that a worker of f names, on the
// Redis of b (which starts the embedded one if f's [redis] addr is
// "embedded"; it is asked only if a worker names a fleet). A Redis that
// cannot be reached is not an error: the bucket starts at its local share
// and rejoins when Redis answers. A Redis that refuses the bucket's script
// is; then nothing stays open.
func Open(f *config.File, b *brokers.Brokers, log *slog.Logger) (*Set, error) {
	s := &Set{log: log, members: map[string]*member{}}
	for _, w := range f.Workers {
		if w.Fleet == "" {
			continue
		}
		if m := s.members[w.Fleet]; m != nil {
			m.users = append(m.users, w.Name)
			continue
		}
		m, err := s.join(f, f.Fleets[w.Fleet], b)
		if err != nil {
			s.Close()
			return nil, err
		}
		m.users = []string{w.Name}
		s.members[w.Fleet] = m
	}
	return s, nil
}

func (s *Set) join(f *config.File, fc config.Fleet, b *brokers.Brokers) (*member, error) {
	if fc.Store == config.StoreNATS {
		c := fc.NATSBucket()
		c.Logger = s.log.With("fleet", fc.Name)
		lim, target, err := joinNATS(fc, b, c)
		if err != nil {
			return nil, fmt.Errorf("fleet %q on %s: %w", fc.Name, b.NATSAt(), err)
		}
		st := lim.Info()
		s.log.Info("fleet joined", "fleet", fc.Name, "rate", fc.Rate, "mode", st.Mode, "processes", st.Workers, "nats", target)
		return &member{cfg: fc, limit: lim}, nil
	}
	rdb, err := b.RedisClient(func(o *redis.UniversalOptions) { o.ContextTimeoutEnabled = true })
	if err != nil {
		return nil, fmt.Errorf("fleet %q: %w", fc.Name, err)
	}
	if f.Redis.Addr == config.Embedded {
		s.log.Warn("fleet on the embedded Redis: only the workers of this process share it; set [redis] addr to share it with other processes",
			"fleet", fc.Name)
	}
	target := b.RedisTarget()
	bc := fc.Bucket()
	bc.Logger = s.log.With("fleet", fc.Name)
	bk, err := redisbucket.New(rdb, bc)
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("fleet %q on %s: %w", fc.Name, b.RedisAt(), err)
	}
	st := bk.Stats()
	s.log.Info("fleet joined", "fleet", fc.Name, "rate", fc.Rate, "mode", st.Mode.String(), "processes", st.Workers, "redis", target)
	return &member{cfg: fc, rdb: rdb, limit: redisLimit{bk}}, nil
}

// Bucket returns the shared limit of the fleet name, the pacer.Limiter
// of the workers that name it, or nil if no worker does.
func (s *Set) Bucket(name string) Limit {
	if m := s.members[name]; m != nil {
		return m.limit
	}
	return nil
}

// SetRates applies the fleet rates of f, a new load of the config the Set
// was opened with, in place. A fleet's new rate is this process's: every
// process of the fleet needs the reload (until then, the shared bucket
// runs at the rate of whichever process called Redis last). Other fleet
// settings are not looked at: the caller refuses those changes.
func (s *Set) SetRates(f *config.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(s.members)) {
		m := s.members[name]
		nf := f.Fleets[name]
		if nf.Rate == m.cfg.Rate {
			continue
		}
		if err := m.limit.SetRate(nf.Rate); err != nil {
			return fmt.Errorf("fleet %q: %w", name, err)
		}
		s.log.Info("reloaded", "fleet", name, "rate", fmt.Sprintf("%g → %g", m.cfg.Rate, nf.Rate))
		m.cfg.Rate = nf.Rate
	}
	return nil
}

// Close closes the buckets (giving leased tokens not used back to Redis)
// and their Redis clients. Close the pacers that use them first.
func (s *Set) Close() {
	for _, name := range slices.Sorted(maps.Keys(s.members)) {
		m := s.members[name]
		m.limit.Close()
		if m.rdb != nil {
			_ = m.rdb.Close()
		}
		st := m.limit.Info()
		s.log.Info("fleet left", "fleet", name, "store", st.Store, "dispatched", st.Dispatched, "store_calls", st.Calls, "fallbacks", st.Fallbacks)
	}
}

// Status returns the state of the fleets, by name.
func (s *Set) Status() []status.FleetStatus {
	var out []status.FleetStatus
	for _, name := range slices.Sorted(maps.Keys(s.members)) {
		m := s.members[name]
		st := m.limit.Info()
		fs := status.FleetStatus{
			Name: name, Store: st.Store, Mode: st.Mode, Rate: st.Rate, Processes: st.Workers, Share: st.Share,
			Workers: slices.Clone(m.users), Dispatched: st.Dispatched, RedisCalls: st.Calls, RedisErrors: st.Errors,
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
