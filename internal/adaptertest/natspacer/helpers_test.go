package natspacer_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/jobpacer/pacer/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect connects to url, reconnecting forever, and closes at cleanup.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectBufSize(64<<20))
	if err != nil {
		t.Fatalf("nats.Connect(%q): %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return nc, js
}

// fixture is a stream and a durable pull consumer of a test's own.
type fixture struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  string
	subject string
	cons    jetstream.Consumer
}

// newFixture creates a file-backed stream and a durable consumer on it
// with cc (Durable "worker" when empty; AckPolicy's zero value is
// explicit).
func newFixture(t testing.TB, url string, cc jetstream.ConsumerConfig) *fixture {
	t.Helper()
	nc, js := connect(t, url)
	name := testenv.UniqueName(t)
	f := &fixture{nc: nc, js: js, stream: name, subject: "jobs." + name}
	ctx := context.Background()
	// The server has, rarely and under load, answered a stream creation
	// with a 500 ("error creating store for stream"); that is setup, not
	// what the tests check: try it again a few times, and say so.
	for try := 1; ; try++ {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{f.subject}, Storage: jetstream.FileStorage})
		if err == nil {
			break
		}
		if try == 3 {
			t.Fatalf("CreateStream(%s): %v", name, err)
		}
		t.Logf("CreateStream(%s), try %d: %v; trying again", name, try, err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	if cc.Durable == "" {
		cc.Durable = "worker"
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, name, cc)
	if err != nil {
		t.Fatalf("CreateOrUpdateConsumer(%s, %+v): %v", name, cc, err)
	}
	f.cons = cons
	return f
}

// publish publishes n messages, payload "i", and waits for every ack.
func (f *fixture) publish(t testing.TB, n int) {
	t.Helper()
	const window = 2000
	for i := 0; i < n; i += window {
		var futs []jetstream.PubAckFuture
		for k := i; k < min(i+window, n); k++ {
			fut, err := f.js.PublishAsync(f.subject, fmt.Appendf(nil, "%d", k))
			if err != nil {
				t.Fatalf("PublishAsync #%d: %v", k, err)
			}
			futs = append(futs, fut)
		}
		for k, fut := range futs {
			select {
			case <-fut.Ok():
			case err := <-fut.Err():
				t.Fatalf("publish #%d: %v", i+k, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("publish #%d: no ack in 30s", i+k)
			}
		}
	}
}

// info returns the consumer's info.
func (f *fixture) info(t testing.TB) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := f.cons.Info(context.Background())
	if err != nil {
		t.Fatalf("consumer Info: %v", err)
	}
	return info
}

// recorder is a Handler that records every call: its start time, the
// message's stream sequence and NumDelivered, and the outcome.
type recorder struct {
	do func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error

	mu        sync.Mutex
	starts    []time.Time
	delivered map[uint64][]uint64 // stream seq → NumDelivered of each call
	succeeded map[uint64]int      // stream seq → calls that returned nil
	calls     int
}

func newRecorder(do func(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) error) *recorder {
	return &recorder{do: do, delivered: map[uint64][]uint64{}, succeeded: map[uint64]int{}}
}

func (r *recorder) Handle(ctx context.Context, msg jetstream.Msg) error {
	start := time.Now()
	md, err := msg.Metadata()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.starts = append(r.starts, start)
	r.delivered[md.Sequence.Stream] = append(r.delivered[md.Sequence.Stream], md.NumDelivered)
	r.calls++
	r.mu.Unlock()
	if r.do != nil {
		err = r.do(ctx, msg, md)
	}
	if err == nil {
		r.mu.Lock()
		r.succeeded[md.Sequence.Stream]++
		r.mu.Unlock()
	}
	return err
}

// distinct returns the number of messages whose handler succeeded.
func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.succeeded)
}

func (r *recorder) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// startsBefore counts the calls that started before t.
func (r *recorder) startsBefore(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.starts {
		if s.Before(t) {
			n++
		}
	}
	return n
}

// maxInWindow returns the most calls that started within any window of
// length w.
func (r *recorder) maxInWindow(w time.Duration) int {
	r.mu.Lock()
	s := append([]time.Time(nil), r.starts...)
	r.mu.Unlock()
	return maxInWindow(s, w)
}

// stampLimiter is a pacer.Limiter that never waits and stamps the time of
// every permit the pacer gives (it is asked after the ceiling).
type stampLimiter struct {
	mu     sync.Mutex
	stamps []time.Time
}

func (l *stampLimiter) Wait(ctx context.Context, n int) error {
	now := time.Now()
	l.mu.Lock()
	for range n {
		l.stamps = append(l.stamps, now)
	}
	l.mu.Unlock()
	return nil
}

func (l *stampLimiter) maxInWindow(w time.Duration) int {
	l.mu.Lock()
	s := append([]time.Time(nil), l.stamps...)
	l.mu.Unlock()
	return maxInWindow(s, w)
}

func (l *stampLimiter) longestGap() time.Duration {
	l.mu.Lock()
	s := append([]time.Time(nil), l.stamps...)
	l.mu.Unlock()
	return longestGap(s)
}

// longestGap returns the longest time between consecutive times of s.
func longestGap(s []time.Time) time.Duration {
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	var gap time.Duration
	for i := 1; i < len(s); i++ {
		gap = max(gap, s[i].Sub(s[i-1]))
	}
	return gap
}

// maxInWindow returns the most of times s within any window of length w.
func maxInWindow(s []time.Time, w time.Duration) int {
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	best, lo := 0, 0
	for hi := range s {
		for s[hi].Sub(s[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// longestGap returns the longest time between consecutive call starts.
func (r *recorder) longestGap() time.Duration {
	r.mu.Lock()
	s := append([]time.Time(nil), r.starts...)
	r.mu.Unlock()
	return longestGap(s)
}

// natsServer returns the test's NATS server.
func natsServer(t testing.TB) *testenv.NATSServer {
	t.Helper()
	return testenv.NATS(t)
}
