package admin

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// MaxProfileSeconds is the longest ?seconds= of /debug/pprof/profile and
// /debug/pprof/trace: their response may take that long, past
// WriteTimeout, which bounds every other route.
const MaxProfileSeconds = 120

// Pprof serves net/http/pprof under /debug/pprof/ (the index, cmdline,
// profile, symbol, trace and the named profiles: heap, goroutine, allocs,
// block, mutex, threadcreate), to loopback clients only: a request from
// any other address gets 403 Forbidden, whatever address the server is
// bound to. ?seconds= of profile and trace is at most MaxProfileSeconds.
// Mount it at "/debug/pprof/" beside Handler's routes.
func Pprof() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackClient(r.RemoteAddr) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			http.Error(w, "admin: /debug/pprof/ is served to loopback clients only", http.StatusForbidden)
			return
		}
		if v := r.URL.Query().Get("seconds"); v != "" {
			sec, err := strconv.ParseFloat(v, 64)
			if err != nil || sec <= 0 || sec > MaxProfileSeconds {
				http.Error(w, "admin: seconds: want a number in (0, "+strconv.Itoa(MaxProfileSeconds)+"]", http.StatusBadRequest)
				return
			}
			// The profile outlasts WriteTimeout: extend this response's
			// deadline, and hide the server from pprof, which refuses
			// a duration past the server's WriteTimeout.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(sec*float64(time.Second)) + WriteTimeout))
			r = r.WithContext(context.WithValue(r.Context(), http.ServerContextKey, struct{}{}))
		}
		mux.ServeHTTP(w, r)
	})
}

// loopbackClient reports whether remote, a request's RemoteAddr, is a
// loopback address.
func loopbackClient(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
