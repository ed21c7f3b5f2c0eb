package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobpacer/pacer/adapters/natspacer"
	"github.com/jobpacer/pacer/adapters/sink"
	"github.com/jobpacer/pacer/internal/brokers"
	"github.com/jobpacer/pacer/internal/plugin"
	"github.com/jobpacer/pacer/pacer"
)

// JetStreamConfig is the [worker.source] table of kind "jetstream".
type JetStreamConfig struct {
	// Stream is the stream to consume. Required. If it does not exist it
	// is created with Subjects.
	Stream string `toml:"stream"`
	// Subjects are the subjects of a stream pacer creates. The default
	// value is ["<stream in lower case>.>"].
	Subjects []string `toml:"subjects"`
	// Durable names the durable pull consumer. The default value is
	// "pacer-<worker>".
	Durable string `toml:"durable"`
	// FilterSubject narrows the consumer to a subject. The default value,
	// "", takes the whole stream.
	FilterSubject string `toml:"filter_subject"`
	// AckWait is the consumer's ack deadline; pacer sends progress for a
	// job that waits for the pace longer than half of it. The default
	// value is 30s.
	AckWait time.Duration `toml:"ack_wait"`
	// MaxDeliver bounds deliveries of a job. The default value, 0, means
	// no bound.
	MaxDeliver int `toml:"max_deliver"`
	// Retention is the retention of a stream pacer creates:
	// "workqueue" (a job leaves the stream once acked) or "limits" (jobs
	// stay until MaxAge, whether acked or not). The default value is
	// "workqueue". pacer never changes a stream it did not create: it
	// logs the retention such a stream has.
	Retention string `toml:"retention"`
	// MaxAge is how long a stream pacer creates keeps a job, acked or
	// not: required with retention "limits", optional with "workqueue"
	// (0: until acked).
	MaxAge time.Duration `toml:"max_age"`
}

// NATSConfig is the [worker.source] table of kind "nats" (core NATS,
// at-most-once: jobs that arrive while the buffer is full are dropped and
// counted).
type NATSConfig struct {
	// Subject to subscribe to, wildcards allowed. Required.
	Subject string `toml:"subject"`
	// Queue is the queue group, so that several workers share the
	// subject. The default value is "pacer".
	Queue string `toml:"queue"`
	// Buffer is how many jobs wait for the pace before new ones are
	// dropped. The default value, 0, is natspacer.DefaultBuffer.
	Buffer int `toml:"buffer"`
}

func init() {
	plugin.RegisterSource("jetstream", func(o plugin.Options) (plugin.Source, error) {
		var c JetStreamConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		durable, derived := c.Durable, c.Durable == ""
		if derived {
			durable = "pacer-" + o.WorkerName()
		}
		switch {
		case c.Stream == "":
			return nil, o.Errorf("stream", "missing: want the stream's name, such as \"JOBS\"")
		case badName(c.Stream) != "":
			return nil, o.Errorf("stream", "%q: want a stream name %s", c.Stream, badName(c.Stream))
		case derived && badName(durable) != "":
			// run would refuse the consumer's name: check refuses it first.
			return nil, o.Errorf("durable", "%q (the default, \"pacer-\" and the worker's name): want a consumer name %s: rename the worker, or set durable", durable, badName(durable))
		case badName(durable) != "":
			return nil, o.Errorf("durable", "%q: want a consumer name %s", durable, badName(durable))
		case c.FilterSubject != "" && badSubject(c.FilterSubject) != "":
			return nil, o.Errorf("filter_subject", "%q: want a subject %s", c.FilterSubject, badSubject(c.FilterSubject))
		case c.AckWait < 0 || c.AckWait > 0 && c.AckWait < time.Second || c.AckWait > MaxAckWait:
			return nil, o.Errorf("ack_wait", "%v: want a duration in [1s, %v] with a unit, such as \"30s\" (after a crash, the jobs in flight wait this long to be delivered again)", c.AckWait, MaxAckWait)
		case c.MaxDeliver < 0:
			return nil, o.Errorf("max_deliver", "%d: want ≥ 0 (0: no bound)", c.MaxDeliver)
		case c.Retention != "" && c.Retention != "workqueue" && c.Retention != "limits":
			return nil, o.Errorf("retention", "%q: want \"workqueue\" (a job leaves the stream once acked) or \"limits\" (jobs stay until max_age)", c.Retention)
		case c.MaxAge < 0:
			return nil, o.Errorf("max_age", "%v: want a duration ≥ 0s, such as \"24h\"", c.MaxAge)
		case c.Retention == "limits" && c.MaxAge == 0:
			return nil, o.Errorf("max_age", "missing: retention \"limits\" keeps every job until max_age: want a duration, such as \"24h\"")
		}
		if c.Retention == "" {
			c.Retention = "workqueue"
		}
		for _, subj := range c.Subjects {
			if why := badSubject(subj); why != "" {
				return nil, o.Errorf("subjects", "%q: want subjects %s", subj, why)
			}
		}
		if len(c.Subjects) == 0 {
			c.Subjects = []string{strings.ToLower(c.Stream) + ".>"}
		}
		if c.AckWait == 0 {
			c.AckWait = 30 * time.Second
		}
		c.Durable = durable
		return &jetStreamSource{cfg: c}, nil
	})
	plugin.RegisterSource("nats", func(o plugin.Options) (plugin.Source, error) {
		var c NATSConfig
		if err := o.Decode(&c); err != nil {
			return nil, err
		}
		if c.Subject == "" {
			return nil, o.Errorf("subject", "missing: want a subject, such as \"jobs.>\"")
		}
		if why := badSubject(c.Subject); why != "" {
			return nil, o.Errorf("subject", "%q: want a subject %s", c.Subject, why)
		}
		if strings.ContainsAny(c.Queue, " \t\r\n") {
			return nil, o.Errorf("queue", "%q: want a queue group name without spaces, tabs or line breaks", c.Queue)
		}
		if c.Buffer < 0 || c.Buffer > maxBuffer {
			return nil, o.Errorf("buffer", "%d: want jobs in [0, %d] (0: natspacer's default, %d)", c.Buffer, maxBuffer, natspacer.DefaultBuffer)
		}
		if c.Queue == "" {
			c.Queue = "pacer"
		}
		return &natsSource{cfg: c}, nil
	})
}

// maxBuffer bounds a nats source's buffer: the jobs it holds in memory.
const maxBuffer = 1000000

// MaxAckWait is the longest ack_wait of a jetstream source. The consumer
// delivers a job again only once its ack_wait has passed without an ack or
// a progress signal; pacer sends progress every ack_wait/2 for each job it
// holds, so a long job never needs a long ack_wait, and ack_wait is only
// how long the jobs a crashed pacer held stay pending. nats-server sets no
// bound of its own: "2562047h" (the largest time.Duration) would keep them
// for 292 years.
const MaxAckWait = time.Hour

// maxNameLen is the longest stream or consumer name nats-server takes
// (its JSMaxNameLen).
const maxNameLen = 255

// badName returns what a JetStream stream or consumer name must be, as
// nats.go's and nats-server's checks refuse it (so that check refuses what
// run would), or "" if name is good.
func badName(name string) string {
	if strings.ContainsAny(name, ">*. /\\\t\r\n") || len(name) > maxNameLen {
		return fmt.Sprintf("of at most %d bytes without '.', '*', '>', '/', '\\', spaces, tabs or line breaks", maxNameLen)
	}
	return ""
}

// badSubject returns what a NATS subject must be, as nats.go and
// nats-server refuse it, or "" if subj is good: tokens separated by '.',
// none empty, no white space, '>' only as the last token.
func badSubject(subj string) string {
	const want = "of tokens separated by '.', none empty, without white space, '>' only as the last token (such as \"jobs.>\")"
	if strings.ContainsAny(subj, " \t\r\n") {
		return want
	}
	tokens := strings.Split(subj, ".")
	for i, t := range tokens {
		if t == "" || t == ">" && i < len(tokens)-1 {
			return want
		}
	}
	return ""
}

// concrete returns a subject that matches pattern: wildcards become "demo".
func concrete(pattern string) string {
	parts := strings.Split(pattern, ".")
	for i, p := range parts {
		if p == "*" || p == ">" {
			parts[i] = "demo"
		}
	}
	return strings.Join(parts, ".")
}

type jetStreamSource struct {
	cfg     JetStreamConfig
	logger  *slog.Logger     // the run's; set by UseBrokers
	brokers *brokers.Brokers // set by UseBrokers
	js      jetstream.JetStream
	cons    jetstream.Consumer
	probe   *natspacer.Probe
	resume  resume    // where the consumer got, to recreate it there
	created time.Time // the stream's creation time, read by Connect: part of each job's id
}

func (s *jetStreamSource) UseBrokers(b *brokers.Brokers) { s.brokers, s.logger = b, b.Log() }

func (s *jetStreamSource) Connect(ctx context.Context) (pacer.Probe, error) {
	b := s.brokers
	nc, err := b.NATS()
	if err != nil {
		return nil, err
	}
	// A reconnect (after Run failed) keeps s.js: Produce may read it
	// meanwhile, and b.NATS is the same connection.
	if s.js == nil {
		if s.js, err = jetstream.New(nc); err != nil {
			return nil, fmt.Errorf("jetstream source: %w", err)
		}
	}
	js := s.js
	st, err := js.Stream(ctx, s.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		sc := s.streamConfig()
		_, err = js.CreateStream(ctx, sc)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("jetstream source: create stream %s: %w", s.cfg.Stream, err)
		}
		if err == nil {
			s.log().Info("stream created", "stream", sc.Name, "subjects", sc.Subjects, "retention", s.cfg.Retention, "max_age", sc.MaxAge)
		}
		st, err = js.Stream(ctx, s.cfg.Stream)
	} else if err == nil {
		ci := st.CachedInfo().Config
		s.log().Info("stream exists: pacer does not change it", "stream", ci.Name, "subjects", ci.Subjects,
			"retention", retentionName(ci.Retention), "max_age", ci.MaxAge)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream source: stream %s: %w", s.cfg.Stream, err)
	}
	s.created = st.CachedInfo().Created
	s.resume.streamIs(s.created)
	if s.cons != nil { // a reconnect: the last ack floor the old consumer showed
		s.resume.observe(s.cons.CachedInfo())
	}
	s.cons, err = s.resume.consumer(ctx, js, st, jetstream.ConsumerConfig{
		Durable: s.cfg.Durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cfg.AckWait,
		FilterSubject: s.cfg.FilterSubject, MaxDeliver: s.cfg.MaxDeliver,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream source: consumer %s: %w", s.cfg.Durable, err)
	}
	s.probe = natspacer.NewProbe(s.cons)
	return s.probe, nil
}

// jobIDPrefix is what a JetStream job's id has before its stream
// sequence: the stream's name and creation time (Unix nanoseconds), so
// that a stream deleted and made again, whose sequences start again at 1,
// gives its jobs ids (and Idempotency-Keys) its old jobs never had.
func jobIDPrefix(stream string, created time.Time) string {
	return stream + ":" + strconv.FormatInt(created.UnixNano(), 10) + ":"
}

// streamConfig is the config of the stream pacer creates when it does
// not exist.
func (s *jetStreamSource) streamConfig() jetstream.StreamConfig {
	sc := jetstream.StreamConfig{Name: s.cfg.Stream, Subjects: s.cfg.Subjects, MaxAge: s.cfg.MaxAge,
		Retention: jetstream.WorkQueuePolicy}
	if s.cfg.Retention == "limits" {
		sc.Retention = jetstream.LimitsPolicy
	}
	return sc
}

func retentionName(p jetstream.RetentionPolicy) string {
	switch p {
	case jetstream.WorkQueuePolicy:
		return "workqueue"
	case jetstream.LimitsPolicy:
		return "limits"
	case jetstream.InterestPolicy:
		return "interest"
	}
	return p.String()
}

func (s *jetStreamSource) log() *slog.Logger {
	if s.logger != nil {
		return s.logger
	}
	return slog.Default()
}

func (s *jetStreamSource) subject() string {
	if s.cfg.FilterSubject != "" {
		return concrete(s.cfg.FilterSubject)
	}
	return concrete(s.cfg.Subjects[0])
}

func (s *jetStreamSource) Produce(ctx context.Context, payload []byte) error {
	_, err := s.js.Publish(ctx, s.subject(), payload)
	return err
}

// PoolsHandlers says that Run runs at most max_in_flight handlers
// (natspacer.Concurrency) and fetches ahead of them within natspacer's
// window: the runner leaves max_in_flight out of the pacer
// (plugin.HandlerPool).
func (*jetStreamSource) PoolsHandlers() {}

// Run consumes with natspacer.Consume, which fetches only as many
// messages as the pacer has admitted. On stop it fetches no more and
// handles what it holds, for up to the drain timeout; then what is left
// is nakked for redelivery.
func (s *jetStreamSource) Run(ctx context.Context, env plugin.Env) error {
	opts := []natspacer.ConsumeOption{natspacer.WithProbe(s.probe), natspacer.Logger(env.Log)}
	if env.MaxInFlight > 0 {
		opts = append(opts, natspacer.Concurrency(env.MaxInFlight))
	} // else natspacer's default
	if start, above := s.resume.recreated(); start > 0 {
		env.Log.Info("consumer recreated after the jobs already done", "worker", env.Worker,
			"stream", s.cfg.Stream, "consumer", s.cfg.Durable, "start_seq", start, "done_above", above)
	}
	idPrefix := jobIDPrefix(s.cfg.Stream, s.created)
	hard, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := natspacer.Consume(hard, s.cons, env.Pacer, natspacer.HandlerFunc(func(_ context.Context, msg jetstream.Msg) error {
		j := sink.Job{Type: msg.Subject(), Payload: msg.Data(), Worker: env.Worker, Attempt: 1}
		var seq uint64
		if md, err := msg.Metadata(); err == nil {
			seq = md.Sequence.Stream
			j.ID = idPrefix + strconv.FormatUint(seq, 10)
			j.Attempt = int(md.NumDelivered)
		}
		if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
			j.ID = id // the publisher's own id, which JetStream de-duplicates on too
		}
		if seq != 0 && s.resume.seen(seq) {
			// Settled already, on a consumer since recreated (or its ack
			// was lost): ack it without running it again.
			env.Log.Debug("job done already: acked without running it", "worker", env.Worker, "seq", seq)
			return nil
		}
		out := env.Handle(j)
		if out == nil || errors.Is(out, sink.ErrPermanent) {
			if seq != 0 {
				s.resume.settled(seq)
			}
		}
		if errors.Is(out, sink.ErrPermanent) {
			return fmt.Errorf("%w: %w", out, natspacer.ErrTerminate) // retrying cannot help
		}
		return out
	}), opts...)
	if err != nil {
		return fmt.Errorf("jetstream source: %w", err)
	}
	tick := time.NewTicker(refreshEvery)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-c.Closed():
			return c.Wait()
		case <-tick.C:
			if err := s.resume.refresh(ctx, s.cons); err != nil {
				env.Log.Debug("ack floor not read", "worker", env.Worker, "err", err)
			}
		}
	}
	c.Drain()
	t := time.NewTimer(env.DrainTimeout)
	defer t.Stop()
	select {
	case <-c.Closed():
	case <-t.C:
		env.Log.Warn("drain timeout: jobs not finished go back to the stream", "worker", env.Worker)
		cancel()
	}
	return c.Wait()
}
