// Package plugin is the registry of source and sink kinds that
// config.toml names: the built-in ones (packages sources and sinks) and
// those a program registers through package worker. Load reads a config
// and builds each [worker.source] and [worker.sink] table with its kind.
package plugin
