package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/jobpacer/pacer/adapters/natsbucket"
	"github.com/jobpacer/pacer/adapters/redisbucket"
	"github.com/jobpacer/pacer/pacer"
)

// Defaults of the top-level keys.
const (
	DefaultAdmin        = "127.0.0.1:9464"
	DefaultRedis        = "127.0.0.1:6379"
	DefaultNATS         = "nats://127.0.0.1:4222"
	DefaultStatusEvery  = 5 * time.Second
	DefaultDrainTimeout = 30 * time.Second
	// DefaultRecoverTimeout is how long a worker may stay down (its
	// source failed and cannot be restarted) before pacer run exits 1.
	DefaultRecoverTimeout = 5 * time.Minute
	// Embedded is the broker address that starts an in-process broker.
	Embedded = "embedded"
)

// Bounds of the top-level settings, and of the file.
const (
	// MaxWorkers is the most [[worker]] tables a file may have: each holds
	// connections, goroutines and file descriptors.
	MaxWorkers = 256
	// MinStatusEvery is the shortest status_every other than 0s.
	MinStatusEvery = time.Second
	// MaxDrainTimeout is the longest drain_timeout.
	MaxDrainTimeout = time.Hour
	// MinRecoverTimeout and MaxRecoverTimeout bound recover_timeout.
	MinRecoverTimeout = time.Second
	MaxRecoverTimeout = 24 * time.Hour
	// MaxFileSize is the largest config file Load reads.
	MaxFileSize = 1 << 20
)

// File is a loaded and checked config file.
type File struct {
	Path  string `toml:"-"`
	Admin string `toml:"admin"` // host:port of /metrics and /status; "" turns it off
	// AdminPprof serves net/http/pprof at /debug/pprof/ on the admin
	// address, to loopback clients only; the admin address must then be
	// a loopback one (LoopbackAddr).
	AdminPprof   bool     `toml:"admin_pprof"`
	LogFormat    string   `toml:"log_format"`    // text or json
	LogLevel     string   `toml:"log_level"`     // debug, info, warn, error
	StatusEvery  Duration `toml:"status_every"`  // period of the status log line; "0s" turns it off
	DrainTimeout Duration `toml:"drain_timeout"` // how long SIGTERM waits for in-flight jobs
	// RecoverTimeout is how long a worker whose source failed may stay
	// down, restarted with backoff, before pacer run exits 1.
	RecoverTimeout Duration `toml:"recover_timeout"`
	Redis          Redis    `toml:"redis"`
	NATS           NATS     `toml:"nats"`
	Demo           Demo     `toml:"demo"`
	// Fleets are the [fleet.NAME] tables, by name: limits shared through
	// Redis by every worker that names them.
	Fleets  map[string]Fleet `toml:"fleet"`
	Workers []Worker         `toml:"worker"`

	md      toml.MetaData
	raw     map[string]any // the file decoded into plain values
	pos     *positions
	fleetOK map[string]bool // fleets whose settings passed redisbucket's checks
}

// Redis says where the Redis server of Asynq sources and of fleets is, and
// how to log in. One of addr, url, cluster_addrs and sentinel names the
// server (addr by default). Every string may hold ${NAME}, replaced by the
// environment variable NAME when the file loads (see docs/connections.md).
type Redis struct {
	Addr         string   `toml:"addr"`          // host:port, or "embedded"
	URL          string   `toml:"url"`           // redis://[user:password@]host:port[/db], or rediss:// for TLS
	ClusterAddrs []string `toml:"cluster_addrs"` // seed nodes of a Redis Cluster, host:port
	Sentinel     Sentinel `toml:"sentinel"`      // a primary found through Redis Sentinel
	Username     string   `toml:"username"`      // ACL user; "" = default
	Password     string   `toml:"password"`
	DB           int      `toml:"db"`
	TLS          TLS      `toml:"tls"`
}

// Sentinel is the [redis.sentinel] table: the primary named Master, found
// through the sentinels at Addrs.
type Sentinel struct {
	Master   string   `toml:"master"`   // the name the sentinels monitor
	Addrs    []string `toml:"addrs"`    // sentinels, host:port
	Username string   `toml:"username"` // of the sentinels, if they ask for one
	Password string   `toml:"password"` // of the sentinels, if they ask for one
}

// TLS is a [redis.tls] or [nats.tls] table. Any key turns TLS on; with no
// CA the system's roots verify the server.
type TLS struct {
	Enabled    bool   `toml:"enabled"`     // TLS with the system's roots and no other key
	CA         string `toml:"ca"`          // PEM file of the CA that signed the server's certificate
	Cert       string `toml:"cert"`        // PEM file of the client certificate, with key
	Key        string `toml:"key"`         // PEM file of the client certificate's key
	ServerName string `toml:"server_name"` // name to verify the server's certificate against; "" = the host dialled
}

// On reports whether any key of the table asks for TLS.
func (t TLS) On() bool {
	return t.Enabled || t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != ""
}

// NATS says where the NATS server (or cluster) of jetstream and nats
// sources is, and how to log in: at most one of creds, nkey, user and
// token. Every string may hold ${NAME}, replaced by the environment
// variable NAME when the file loads.
type NATS struct {
	URL      string   `toml:"url"`       // nats://host:port (several comma-separated), or "embedded"
	URLs     []string `toml:"urls"`      // servers of a cluster; instead of url
	StoreDir string   `toml:"store_dir"` // JetStream data of the embedded server; "" = a temporary directory
	Creds    string   `toml:"creds"`     // a .creds file (user JWT and nkey seed)
	NKey     string   `toml:"nkey"`      // a file holding an nkey seed (SU...), or the seed itself
	User     string   `toml:"user"`
	Password string   `toml:"password"`
	Token    string   `toml:"token"`
	TLS      TLS      `toml:"tls"`
}

// Demo is a producer that feeds every worker's source, for demos.
type Demo struct {
	Rate    float64 `toml:"rate"`    // jobs per second per worker; 0 = off
	Payload string  `toml:"payload"` // job payload; "" = a small JSON document
}

// Fleet is a [fleet.NAME] table: one limit shared, through the Redis of
// [redis], by every worker that names it with fleet = "NAME", in this
// process and in every other pacer run on the same Redis (see package
// redisbucket). Rate is required; the other keys have the defaults of
// redisbucket.Config, whose fields they twin by toml key (twins.go).
type Fleet struct {
	Name            string   `toml:"-"`                // the table's name, the bucket's key in Redis
	Rate            float64  `toml:"rate"`             // jobs per second for the whole fleet
	Burst           float64  `toml:"burst"`            // jobs at once after the fleet was idle
	ExpectedWorkers int      `toml:"expected_workers"` // processes sharing it; sets the share during an outage; 0 = last seen
	LeaseTime       Duration `toml:"lease_time"`       // how long's worth of its share a process leases
	RetryInterval   Duration `toml:"retry_interval"`   // retry period in fallback
	Timeout         Duration `toml:"timeout"`          // bound of each Redis call
	Prefix          string   `toml:"prefix"`           // of the Redis keys (of the NATS key with store = "nats")
	Store           string   `toml:"store"`            // where the fleet is held: "redis" (the default, [redis]) or "nats" ([nats]); see fleetstore.go
	KVBucket        string   `toml:"kv_bucket"`        // store = "nats": the JetStream key-value bucket; default "pacer_fleet"

	// Settings is the fleet's redisbucket.Config with redisbucket's
	// defaults applied (without Logger and Clock), set by Load.
	Settings redisbucket.Config `toml:"-"`
	// NATSSettings is the fleet's natsbucket.Config with natsbucket's
	// defaults applied when Store is "nats", set by Load.
	NATSSettings natsbucket.Config `toml:"-"`
}

// Bucket returns the redisbucket.Config of the fleet (without Logger and
// Clock).
func (fl *Fleet) Bucket() redisbucket.Config {
	c := redisbucket.Config{Key: fl.Name}
	copyByTag(&c, fl) // the fields of the same toml key (twins.go)
	return c
}

// Worker is one [[worker]]: a source, a sink and the pace between them.
// Its pace keys are twins of pacer.Config's fields, by toml key
// (twins.go): Pacer maps them, and package pacer checks them.
type Worker struct {
	Name string `toml:"name"`
	// Fleet names a [fleet.NAME] table whose shared limit the worker obeys
	// after its own pace; "" = none.
	Fleet             string         `toml:"fleet"`
	Rate              float64        `toml:"rate" want:"a number of jobs per second, such as 20"`
	Burst             float64        `toml:"burst" want:"a whole number of jobs, such as 5"`
	Base              float64        `toml:"base" want:"a number of jobs per second, such as 5"`
	BaseBurst         float64        `toml:"base_burst"`
	MinFactor         float64        `toml:"min_factor"`
	MaxFactor         float64        `toml:"max_factor"`
	MaxInFlight       int            `toml:"max_in_flight" want:"a whole number of jobs, such as 10 (0: no cap)"`
	BacklogHigh       float64        `toml:"backlog_high"`
	BacklogTarget     Duration       `toml:"backlog_target"`
	Period            Duration       `toml:"period"`
	Cut               float64        `toml:"cut"`
	DefaultRetryAfter Duration       `toml:"default_retry_after"`
	PauseAfter        Duration       `toml:"pause_after"`
	StormShare        float64        `toml:"storm_share"`
	LatencyTarget     Latency        `toml:"latency_target"`
	AdjMap            []pacer.AdjRow `toml:"adjmap"`
	SourceRaw         toml.Primitive `toml:"source"`
	SinkRaw           toml.Primitive `toml:"sink"`

	Source *Plugin `toml:"-"`
	Sink   *Plugin `toml:"-"`
	Index  int     `toml:"-"` // position in the file, from 0
	// Settings is the worker's pacer.Config with package pacer's defaults
	// applied: the pace it runs at. Set by Load.
	Settings pacer.Config `toml:"-"`
}

// Pacer returns the pacer.Config of the worker (without Probe, Limiter and
// Clock).
func (w *Worker) Pacer() pacer.Config {
	var c pacer.Config
	copyByTag(&c, w) // the fields of the same toml key (twins.go)
	c.AdjMap = slices.Clone(c.AdjMap)
	return c
}

// Load reads, decodes and checks the config file at path. It calls build
// for the source and sink table of each worker that passes the core
// checks; then keys that nothing decoded are errors. All problems come back
// as Errors, in line order.
func Load(path string, build BuildFunc) (*File, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, build)
}

// readFile reads the config file at path without blocking: a named pipe,
// a device or a directory is refused before anything is read (opening a
// FIFO with no writer, or reading /dev/zero, would never end), and so is
// a file larger than MaxFileSize.
func readFile(path string) (string, error) {
	// O_NONBLOCK: opening a FIFO returns at once instead of waiting for a
	// writer; the Stat of what was opened then refuses it. It does not
	// change how a regular file reads.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer fh.Close()
	name := filepath.Base(path)
	fi, err := fh.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", Errors{{File: name, Msg: fmt.Sprintf("%s, not a regular file: want a config file (a FIFO, a device or a directory is not read)", fileKind(fi.Mode()))}}
	}
	if fi.Size() > MaxFileSize {
		return "", Errors{{File: name, Msg: fmt.Sprintf("%d bytes, larger than %d: want a config file of at most 1 MiB", fi.Size(), MaxFileSize)}}
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFileSize { // it grew since the Stat
		return "", Errors{{File: name, Msg: fmt.Sprintf("larger than %d bytes: want a config file of at most 1 MiB", MaxFileSize)}}
	}
	return string(data), nil
}

// fileKind names the kind of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// rawAt returns the plain value at an indexed path ("worker[1].sink"),
// or nil.
func (f *File) rawAt(path string) any {
	var v any = f.raw
	for part := range strings.SplitSeq(path, ".") {
		name, idx, indexed := strings.Cut(part, "[")
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[name]
		if indexed {
			i, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if err != nil {
				return nil
			}
			switch a := v.(type) {
			case []map[string]any:
				if i >= len(a) {
					return nil
				}
				v = a[i]
			case []any:
				if i >= len(a) {
					return nil
				}
				v = a[i]
			default:
				return nil
			}
		}
	}
	return v
}

// failedTable reports whether key (unindexed, such as
// "worker.sink.timeout") is in a source or sink table that failed to
// build, in which case its plugin stopped before reading every key.
func (f *File) failedTable(key string) bool {
	for _, w := range f.Workers {
		for _, p := range []*Plugin{w.Source, w.Sink} {
			if p != nil && p.failed && strings.HasPrefix(key, "worker."+p.Section+".") {
				return true
			}
		}
	}
	return false
}
