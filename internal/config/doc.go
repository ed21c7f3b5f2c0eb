// Package config loads pacer's config.toml into checked settings. Every
// problem is an Error that names the file, the line and the key, and keys
// that nothing reads are errors too, so that a typo never silently runs a
// worker at a default pace.
//
// Sources and sinks are plugins: Load hands each [worker.source] and
// [worker.sink] table to a BuildFunc, which decodes the settings of its
// kind with Plugin.Decode.
//
// A [fleet.NAME] table defines a limit shared through Redis (package
// redisbucket) by every worker whose fleet key names it; Fleet.Bucket
// gives its redisbucket.Config.
package config
