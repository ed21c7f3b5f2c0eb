package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/nats-io/nkeys"
	"github.com/redis/go-redis/v9"

	"github.com/jobpacer/pacer/internal/redact"
)

// envRef is a ${NAME} reference to an environment variable.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces each ${NAME} in the strings of [redis] and [nats] by
// the environment variable NAME. A variable that is not set is an error
// that names the key and the variable, never a value: these strings hold
// passwords and tokens.
func (f *File) expandEnv() error {
	var errs Errors
	expand := func(key string, s *string) {
		*s = envRef.ReplaceAllStringFunc(*s, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := os.LookupEnv(name)
			if !ok {
				errs = append(errs, f.errAt(key, key, fmt.Sprintf("${%s}: the environment variable %s is not set", name, name)))
			}
			return v
		})
	}
	r, n := &f.Redis, &f.NATS
	for key, s := range map[string]*string{
		"redis.addr": &r.Addr, "redis.url": &r.URL, "redis.username": &r.Username, "redis.password": &r.Password,
		"redis.sentinel.master": &r.Sentinel.Master, "redis.sentinel.username": &r.Sentinel.Username,
		"redis.sentinel.password": &r.Sentinel.Password,
		"nats.url":                &n.URL, "nats.store_dir": &n.StoreDir, "nats.creds": &n.Creds, "nats.nkey": &n.NKey,
		"nats.user": &n.User, "nats.password": &n.Password, "nats.token": &n.Token,
	} {
		expand(key, s)
	}
	for i := range r.ClusterAddrs {
		expand(fmt.Sprintf("redis.cluster_addrs[%d]", i), &r.ClusterAddrs[i])
	}
	for i := range r.Sentinel.Addrs {
		expand(fmt.Sprintf("redis.sentinel.addrs[%d]", i), &r.Sentinel.Addrs[i])
	}
	for i := range n.URLs {
		expand(fmt.Sprintf("nats.urls[%d]", i), &n.URLs[i])
	}
	for _, t := range []struct {
		at string
		c  *TLS
	}{{"redis.tls", &r.TLS}, {"nats.tls", &n.TLS}} {
		expand(t.at+".ca", &t.c.CA)
		expand(t.at+".cert", &t.c.Cert)
		expand(t.at+".key", &t.c.Key)
		expand(t.at+".server_name", &t.c.ServerName)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// secretKeys are the keys whose values may hold a password or token.
var secretKeys = map[string]bool{
	"redis.url": true, "redis.password": true, "redis.sentinel.password": true,
	"nats.url": true, "nats.urls": true, "nats.password": true, "nats.token": true,
}

// hideSecret returns the message of a TOML syntax error at key, without
// the text it quotes if key may hold a secret.
func hideSecret(key, msg string) string {
	if !secretKeys[key] {
		return msg
	}
	return "not a valid TOML value: write it as a quoted string, such as \"${NAME}\" to take it from the environment"
}

// checkBrokers checks the [redis] and [nats] tables. Its messages never
// quote a password, a token or a URL that may hold one.
func (f *File) checkBrokers() error {
	errs := append(f.checkRedis(), f.checkNATS()...)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// checkRedis checks the [redis] table.
func (f *File) checkRedis() Errors {
	var errs Errors
	add := func(key, msg string) { errs = append(errs, f.errAt(key, key, msg)) }
	r := f.Redis
	var set []string
	for _, k := range []struct {
		key string
		on  bool
	}{
		{"addr", f.md.IsDefined("redis", "addr")}, {"url", r.URL != ""},
		{"cluster_addrs", len(r.ClusterAddrs) > 0}, {"sentinel", f.md.IsDefined("redis", "sentinel")},
	} {
		if k.on {
			set = append(set, k.key)
		}
	}
	if len(set) > 1 {
		add("redis."+set[1], fmt.Sprintf("%s and %s are both set: name the server one way (addr, url, cluster_addrs or [redis.sentinel])", set[0], set[1]))
	}
	if r.URL != "" {
		o, err := redis.ParseURL(r.URL)
		switch {
		case err != nil:
			add("redis.url", "not a Redis URL: want redis://[user:password@]host:port[/db] or rediss://... for TLS"+urlWhy(err)+encodeHint(r.URL))
		case o.Username != "" && r.Username != "":
			add("redis.username", "the url has a user too: set it in one place")
		case o.Password != "" && r.Password != "":
			add("redis.password", "the url has a password too: set it in one place")
		case o.DB != 0 && r.DB != 0:
			add("redis.db", fmt.Sprintf("%d: the url has a database (/%d) too: set it in one place", r.DB, o.DB))
		}
	}
	for i, a := range r.ClusterAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			add(fmt.Sprintf("redis.cluster_addrs[%d]", i), fmt.Sprintf("%q is not host:port", redact.URL(a)))
		}
	}
	if len(r.ClusterAddrs) > 0 && r.DB != 0 {
		add("redis.db", fmt.Sprintf("%d: a Redis Cluster has only database 0", r.DB))
	}
	if f.md.IsDefined("redis", "sentinel") {
		s := r.Sentinel
		if s.Master == "" {
			add("redis.sentinel.master", "missing: want the name the sentinels monitor, such as \"mymaster\"")
		}
		if len(s.Addrs) == 0 {
			add("redis.sentinel.addrs", "missing: want the sentinels, such as [\"10.0.0.1:26379\", \"10.0.0.2:26379\"]")
		}
		for i, a := range s.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				add(fmt.Sprintf("redis.sentinel.addrs[%d]", i), fmt.Sprintf("%q is not host:port", redact.URL(a)))
			}
		}
	}
	if r.Addr == Embedded && (r.TLS.On() || r.Username != "" || r.Password != "") {
		add("redis.addr", `"embedded" takes no tls, username or password: the embedded Redis is local and open`)
	}
	return append(errs, f.checkTLS("redis.tls", r.TLS)...)
}

// Servers returns the servers of [nats]: urls, or url cut at its commas,
// each trimmed; nil when url is "embedded" (the embedded server's URL is
// known once it runs). The check of the file and the connection both
// read the list from here.
func (n NATS) Servers() []string {
	if len(n.URLs) > 0 {
		return n.URLs
	}
	if n.URL == Embedded {
		return nil
	}
	var urls []string
	for u := range strings.SplitSeq(n.URL, ",") {
		urls = append(urls, strings.TrimSpace(u))
	}
	return urls
}

// checkNATS checks the [nats] table.
func (f *File) checkNATS() Errors {
	var errs Errors
	add := func(key, msg string) { errs = append(errs, f.errAt(key, key, msg)) }
	n := f.NATS
	if f.md.IsDefined("nats", "url") && len(n.URLs) > 0 {
		add("nats.urls", "url and urls are both set: list the servers in urls")
	}
	for i, u := range n.Servers() {
		u = strings.TrimSpace(u)
		key := "nats.url"
		if len(n.URLs) > 0 {
			key = fmt.Sprintf("nats.urls[%d]", i)
		}
		if u == Embedded {
			add(key, `"embedded" is a url of its own, not one of a list`)
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			add(key, "not a NATS URL: want nats://host:port (or tls://host:port)"+urlWhy(err)+encodeHint(u))
			continue
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			add(key, fmt.Sprintf("scheme %q: want nats://, tls://, ws:// or wss://", p.Scheme))
		}
	}
	var auth []string
	for _, a := range []struct {
		key string
		on  bool
	}{{"creds", n.Creds != ""}, {"nkey", n.NKey != ""}, {"user", n.User != ""}, {"token", n.Token != ""}} {
		if a.on {
			auth = append(auth, a.key)
		}
	}
	if len(auth) > 1 {
		add("nats."+auth[1], fmt.Sprintf("%s and %s are both set: log in one way (creds, nkey, user and password, or token)", auth[0], auth[1]))
	}
	if n.Password != "" && n.User == "" {
		add("nats.password", "a password without a user: set user too")
	}
	if redact.IsNKeySeed(n.NKey) {
		if _, err := nkeys.FromSeed([]byte(n.NKey)); err != nil {
			// nkeys's messages name the problem, never the seed.
			add("nats.nkey", "(seed): not a valid nkey seed ("+redact.Reason(err)+"): want a user seed (SU…) or the path of a file holding one")
		}
	}
	for _, file := range []struct{ key, path string }{{"nats.creds", n.Creds}, {"nats.nkey", n.NKey}} {
		if file.path != "" && (file.key != "nats.nkey" || !redact.IsNKeySeed(file.path)) {
			if _, err := os.Stat(file.path); err != nil {
				add(file.key, fmt.Sprintf("%q: %v", file.path, unwrapPath(err)))
			}
		}
	}
	if n.URL == Embedded && (len(auth) > 0 || n.TLS.On()) {
		add("nats.url", `"embedded" takes no creds, nkey, user, token or tls: the embedded server is local and open`)
	}
	return append(errs, f.checkTLS("nats.tls", n.TLS)...)
}

// checkTLS checks a [redis.tls] or [nats.tls] table.
func (f *File) checkTLS(at string, t TLS) Errors {
	var errs Errors
	add := func(key, msg string) { errs = append(errs, f.errAt(at+"."+key, at+"."+key, msg)) }
	if (t.Cert == "") != (t.Key == "") {
		add("cert", "cert and key go together: set both for a client certificate, or neither")
	}
	for _, file := range []struct{ key, path string }{{"ca", t.CA}, {"cert", t.Cert}, {"key", t.Key}} {
		if file.path != "" {
			if _, err := os.Stat(file.path); err != nil {
				add(file.key, fmt.Sprintf("%q: %v", file.path, unwrapPath(err)))
			}
		}
	}
	return errs
}

// urlWhy returns what is wrong with a URL, without the URL (url.Error
// quotes it, and it may hold a password) and without the part of it that
// the reason quotes (a password's first half, if it holds a "/").
func urlWhy(err error) string {
	if err == nil {
		return ""
	}
	if ue, ok := err.(*url.Error); ok {
		return " (" + redact.Reason(ue.Err) + ")"
	}
	msg := err.Error()
	if strings.Contains(msg, "://") || strings.Contains(msg, "@") {
		return ""
	}
	return " (" + strings.TrimPrefix(redact.Reason(err), "redis: ") + ")"
}

// encodeHint says how to write a password that breaks a URL, if u has a
// user part: the usual cause of a URL with one that does not parse.
func encodeHint(u string) string {
	if !strings.Contains(u, "@") {
		return ""
	}
	return "; in a password, write / ? # @ : % as %2F %3F %23 %40 %3A %25"
}

// unwrapPath returns what went wrong with a file, without the path that
// the caller quotes already.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
