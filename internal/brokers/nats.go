package brokers

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/jobpacer/pacer/internal/redact"
)

// NATSURLs returns the servers of [nats] (url or urls), starting the
// embedded server if url is "embedded".
func (b *Brokers) NATSURLs() ([]string, error) {
	b.usedNATS.Store(true)
	if b.nats.URL == Embedded {
		b.mu.Lock()
		defer b.mu.Unlock()
		u, err := b.embedded("nats", b.nats.StoreDir)
		return []string{u}, err
	}
	return b.nats.Servers(), nil
}

// NATSTarget describes the NATS servers of [nats] for logs and errors:
// their URLs with passwords and tokens hidden, how pacer logs in and
// whether TLS is on.
func (b *Brokers) NATSTarget() string {
	urls, err := b.NATSURLs()
	if err != nil {
		return "nats (" + redact.Error(err) + ")"
	}
	s := "nats " + redact.URL(strings.Join(urls, ","))
	n := b.nats
	switch {
	case n.Creds != "":
		s += " creds " + n.Creds
	case n.NKey != "":
		s += " nkey " + redact.NKey(n.NKey)
	case n.User != "":
		s += " user " + n.User
	case n.Token != "":
		s += " token"
	}
	if n.TLS.On() {
		s += " (tls)"
	}
	return s
}

// NATSOptions returns the nats.Options of [nats] for a connection named
// name: how to log in, TLS, and reconnecting for ever, every 500ms, to
// any server of the cluster (nats.go also learns the cluster's other
// servers from the one it reaches). Disconnects and reconnects are
// logged, with passwords hidden.
func (b *Brokers) NATSOptions(name string) ([]nats.Option, error) {
	n := b.nats
	var on atomic.Value // the URL of the server the connection is on, password hidden
	on.Store("")
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond),
		nats.ConnectHandler(func(nc *nats.Conn) { on.Store(redact.URL(nc.ConnectedUrl())) }),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("nats disconnected; reconnecting", "server", on.Load(), "err", redact.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			on.Store(redact.URL(nc.ConnectedUrl()))
			b.log.Info("nats reconnected", "server", on.Load())
		}),
	}
	switch {
	case n.Creds != "":
		opts = append(opts, nats.UserCredentials(n.Creds))
	case redact.IsNKeySeed(n.NKey): // the seed itself, from ${NATS_NKEY}
		kp, err := nkeys.FromSeed([]byte(n.NKey))
		if err != nil {
			// nkeys's messages name the problem, never the seed.
			return nil, fmt.Errorf("nats.nkey (seed): %w", err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("nats.nkey (seed): %w", err)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	case n.NKey != "":
		o, err := nats.NkeyOptionFromSeed(n.NKey)
		if err != nil {
			// nats.go's message names the file and the problem, not the seed.
			return nil, fmt.Errorf("nats.nkey %q: %w", n.NKey, err)
		}
		opts = append(opts, o)
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token))
	}
	t, err := TLSConfig(n.TLS)
	if err != nil {
		return nil, fmt.Errorf("nats.tls: %w", err)
	}
	if t != nil {
		opts = append(opts, nats.Secure(t))
	}
	return opts, nil
}

// ConnectNATS opens a new connection to the [nats] servers, named name;
// the caller closes it. Its error names the servers with passwords
// hidden.
func (b *Brokers) ConnectNATS(name string) (*nats.Conn, error) {
	urls, err := b.NATSURLs()
	if err != nil {
		return nil, err
	}
	opts, err := b.NATSOptions(name)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		// nats.go returns url.Parse's error as it is: it quotes the URL.
		return nil, fmt.Errorf("%s: %w", b.NATSAt(), redact.Wrap(err))
	}
	return nc, nil
}

// NATS returns the connection to the NATS servers that the sources
// share, connecting the first time.
func (b *Brokers) NATS() (*nats.Conn, error) {
	b.natsMu.Lock()
	defer b.natsMu.Unlock()
	if b.nc != nil {
		return b.nc, nil
	}
	nc, err := b.ConnectNATS("pacer")
	if err != nil {
		return nil, err
	}
	b.nc = nc
	return nc, nil
}
