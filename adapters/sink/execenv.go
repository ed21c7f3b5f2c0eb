package sink

import (
	"regexp"
	"strings"
)

// defaultExecEnv is what an exec command gets of pacer's environment
// whatever its env says: what a program needs to find programs, files and
// its locale. Everything else (REDIS_PASSWORD, NATS_TOKEN, cloud keys)
// stays with pacer unless env names it.
var defaultExecEnv = []string{"PATH", "HOME", "LANG", "LC_*", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL"}

// envName is an entry of env that passes variables of pacer's environment:
// NAME, or NAME* for every variable whose name starts with NAME.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\*?$`)

// validEnvEntry reports whether kv is a KEY=VALUE entry or a NAME or
// NAME* to pass.
func validEnvEntry(kv string) bool {
	k, _, set := strings.Cut(kv, "=")
	if set {
		return k != ""
	}
	return envName.MatchString(kv)
}

// jobEnv returns the environment of an exec command: the variables of
// environ (pacer's, as os.Environ gives it) that defaultExecEnv or a NAME
// entry of entries allows, then the KEY=VALUE entries of entries.
func jobEnv(environ, entries []string) []string {
	pass := defaultExecEnv
	var set []string
	for _, kv := range entries {
		if strings.Contains(kv, "=") {
			set = append(set, kv)
		} else {
			pass = append(pass[:len(pass):len(pass)], kv)
		}
	}
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		for _, p := range pass {
			if k == p || strings.HasSuffix(p, "*") && strings.HasPrefix(k, p[:len(p)-1]) {
				env = append(env, kv)
				break
			}
		}
	}
	return append(env, set...)
}
