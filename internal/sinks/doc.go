// Package sinks registers the built-in sink kinds of config.toml: exec,
// http and log (package sink).
package sinks
