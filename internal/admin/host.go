package admin

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// checkHost serves h to requests whose Host header names the server
// bound to addr, and answers 421 Misdirected Request to the others: a
// page of another site that a DNS-rebinding attack points at this
// address sends its own name as Host, so it cannot read /status or
// /samples. The names of the server are: "localhost" and any loopback IP,
// the bound IP, and the machine's host name, each with the bound port
// (or no port if that is 80). A server bound to every address (0.0.0.0,
// [::], or a listener that is not TCP) serves any Host: it is meant to be
// reached by names this process cannot know.
func checkHost(addr net.Addr, h http.Handler) http.Handler {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
		return h
	}
	hostname, _ := os.Hostname()
	port := strconv.Itoa(ta.Port)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, ta.IP, port, hostname) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			http.Error(w, fmt.Sprintf("admin: Host %q is not an address of this server (%s, localhost or %s): "+
				"bind the admin server to 0.0.0.0 to be reached by other names", r.Host, ta, hostname), http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether the Host header host names a server bound
// to ip and port on the machine called hostname.
func hostAllowed(host string, ip net.IP, port, hostname string) bool {
	name, p, err := net.SplitHostPort(host)
	if err != nil { // no port
		name, p = host, "80"
	}
	if p != port {
		return false
	}
	name = strings.TrimSuffix(strings.ToLower(strings.Trim(name, "[]")), ".")
	if name == "localhost" || hostname != "" && name == strings.ToLower(hostname) {
		return true
	}
	hip := net.ParseIP(name)
	return hip != nil && (hip.IsLoopback() || hip.Equal(ip))
}
