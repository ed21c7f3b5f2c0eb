package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// NATSTLS returns a configure func for NATSEmbeddedWith that makes the
// server take only TLS connections with the certificates of files and,
// if clientCert, ask clients for a certificate the CA signed.
func NATSTLS(t testing.TB, files TLSFiles, clientCert bool) func(*server.Options) {
	t.Helper()
	c, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: files.ServerCert, KeyFile: files.ServerKey, CaFile: files.CA, Verify: clientCert})
	if err != nil {
		t.Fatalf("testenv: nats TLS config: %v", err)
	}
	return func(o *server.Options) { o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = c, true, clientCert, 5 }
}

// NATSNKey returns a configure func for NATSEmbeddedWith that lets in
// only the user of a new nkey, and the path of a file (in t.TempDir())
// holding that user's seed.
func NATSNKey(t testing.TB) (configure func(*server.Options), seedFile string, seed string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	s, _ := kp.Seed()
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, s, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, seedFile, string(s)
}

// NATSAccount returns a configure func for NATSEmbeddedWith that runs the
// server in operator (decentralised JWT) mode with one account, with
// JetStream, and the path of a .creds file (in t.TempDir()) of a user of
// that account, and the user's nkey seed that the file holds.
func NATSAccount(t testing.TB) (configure func(*server.Options), credsFile string, seed string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testenv: nats account: %v", err)
		}
	}
	op, err := nkeys.CreateOperator()
	must(err)
	opPub, _ := op.PublicKey()
	sys, err := nkeys.CreateAccount()
	must(err)
	sysPub, _ := sys.PublicKey()
	acc, err := nkeys.CreateAccount()
	must(err)
	accPub, _ := acc.PublicKey()
	user, err := nkeys.CreateUser()
	must(err)
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()

	oc := jwt.NewOperatorClaims(opPub)
	oc.SystemAccount = sysPub
	ojwt, err := oc.Encode(op)
	must(err)
	opClaims, err := jwt.DecodeOperatorClaims(ojwt)
	must(err)
	sc := jwt.NewAccountClaims(sysPub)
	sysJWT, err := sc.Encode(op)
	must(err)
	ac := jwt.NewAccountClaims(accPub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(op)
	must(err)
	uc := jwt.NewUserClaims(userPub)
	userJWT, err := uc.Encode(acc)
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, userSeed)
	must(err)
	credsFile = filepath.Join(t.TempDir(), "pacer.creds")
	must(os.WriteFile(credsFile, creds, 0o600))

	return func(o *server.Options) {
		r := &server.MemAccResolver{}
		must(r.Store(sysPub, sysJWT))
		must(r.Store(accPub, accJWT))
		o.TrustedOperators = []*jwt.OperatorClaims{opClaims}
		o.AccountResolver = r
		o.SystemAccount = sysPub
	}, credsFile, string(userSeed)
}

// NATSCluster starts n nats-server processes (the nats-server binary)
// with JetStream, routed into one cluster, and returns once JetStream has
// a meta leader. Each Process's Port is its client port; MonitorPort
// returns its HTTP monitoring port.
func NATSCluster(t testing.TB, n int) []*Process {
	t.Helper()
	type node struct{ client, cluster, monitor int }
	nodes := make([]node, n)
	var routes []string
	for i := range nodes {
		nodes[i] = node{FreePort(t), FreePort(t), FreePort(t)}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", nodes[i].cluster))
	}
	var procs []*Process
	for i, nd := range nodes {
		args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(nd.client), "-m", strconv.Itoa(nd.monitor),
			"-js", "-sd", t.TempDir(), "-n", fmt.Sprintf("n%d", i+1), "--cluster_name", "pacer",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", nd.cluster), "--routes", strings.Join(routes, ",")}
		p := StartProcess(t, fmt.Sprintf("nats-server n%d", i+1), nd.client, "Server is ready", "nats-server", args...)
		p.monitor = nd.monitor
		procs = append(procs, p)
	}
	WaitFor(t, 30*time.Second, "a JetStream meta leader with every server a current peer", func() bool {
		var jsz struct {
			Meta *struct {
				Leader   string `json:"leader"`
				Replicas []struct {
					Current bool `json:"current"`
				} `json:"replicas"`
			} `json:"meta_cluster"`
		}
		for _, p := range procs {
			jsz.Meta = nil
			if getJSON(p.MonitorURL()+"/jsz", &jsz) != nil || jsz.Meta == nil || jsz.Meta.Leader == "" {
				return false
			}
			if jsz.Meta.Leader != strings.TrimPrefix(p.Name, "nats-server ") {
				continue // only the leader lists the others
			}
			if len(jsz.Meta.Replicas) != n-1 {
				return false
			}
			for _, r := range jsz.Meta.Replicas {
				if !r.Current {
					return false
				}
			}
		}
		return true
	})
	return procs
}

// MonitorURL returns the HTTP monitoring URL of a nats-server that
// NATSCluster started.
func (p *Process) MonitorURL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.monitor) }

// NATSClients returns the names of the clients connected to a
// nats-server that NATSCluster started.
func (p *Process) NATSClients() []string {
	var connz struct {
		Conns []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := getJSON(p.MonitorURL()+"/connz", &connz); err != nil {
		return nil
	}
	var names []string
	for _, c := range connz.Conns {
		names = append(names, c.Name)
	}
	return names
}

func getJSON(url string, v any) error {
	cl := &http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
