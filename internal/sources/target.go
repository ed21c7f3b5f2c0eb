package sources

import "github.com/jobpacer/pacer/internal/plugin"

// Target is where a source takes its jobs from, with the defaults of its
// table applied: what `pacer enqueue` and `pacer publish` need to put jobs
// there.
type Target struct {
	Kind     string // asynq, jetstream or nats
	Queue    string // asynq: the queue
	TaskType string // asynq: the demo producer's task type
	MaxRetry int    // asynq: the demo producer's retry budget
	Subject  string // jetstream, nats: a subject the source takes (wildcards made concrete)
	Stream   string // jetstream: the stream
}

type targeter interface{ target() Target }

// TargetOf returns the Target of a source built by one of this package's
// kinds.
func TargetOf(src plugin.Source) (Target, bool) {
	if t, ok := src.(targeter); ok {
		return t.target(), true
	}
	return Target{}, false
}

func (s *asynqSource) target() Target {
	return Target{Kind: "asynq", Queue: s.cfg.Queue, TaskType: s.cfg.TaskType, MaxRetry: s.cfg.MaxRetry}
}

func (s *jetStreamSource) target() Target {
	return Target{Kind: "jetstream", Subject: s.subject(), Stream: s.cfg.Stream}
}

func (s *natsSource) target() Target {
	return Target{Kind: "nats", Subject: concrete(s.cfg.Subject)}
}
