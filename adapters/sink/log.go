package sink

import (
	"context"
	"fmt"
	"log/slog"
)

// LogConfig configures a Log sink (kind "log" in config.toml).
type LogConfig struct {
	// MaxPayload is how many bytes of the payload a line shows. The
	// default value is 200.
	MaxPayload int `toml:"max_payload"`
	// Level is the level of each job's line: debug, info, warn or error.
	// The default value, "", is debug: a line per job is for debugging,
	// and at the default log level the status line sums the jobs up.
	Level string `toml:"level"`
	// Logger writes the lines. The default value, nil, is slog.Default()
	// at the time of each line. Not
	// settable from config.toml.
	Logger *slog.Logger `toml:"-"`
}

// Log is a Sink that logs each job (at LogConfig.Level) and succeeds:
// for demos and debugging.
type Log struct {
	cfg   LogConfig
	level slog.Level
}

var _ Sink = (*Log)(nil)

// NewLog returns a Log sink.
func NewLog(c LogConfig) (*Log, error) {
	if c.MaxPayload < 0 {
		return nil, invalid("log", "max_payload", c.MaxPayload, "bytes ≥ 0")
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 200
	}
	l := &Log{cfg: c, level: slog.LevelDebug}
	if c.Level != "" {
		if err := l.level.UnmarshalText([]byte(c.Level)); err != nil {
			return nil, invalid("log", "level", fmt.Sprintf("%q", c.Level), "debug, info, warn or error")
		}
	}
	return l, nil
}

// Handle logs j.
func (l *Log) Handle(ctx context.Context, j Job) error {
	p := j.Payload
	more := ""
	if len(p) > l.cfg.MaxPayload {
		p, more = p[:l.cfg.MaxPayload], "…"
	}
	lg := l.cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	lg.LogAttrs(ctx, l.level, "job",
		slog.String("worker", j.Worker), slog.String("id", j.ID), slog.String("type", j.Type),
		slog.Int("attempt", j.Attempt), slog.String("payload", string(p)+more))
	return nil
}
