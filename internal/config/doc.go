// Package config loads pacer's config.toml into checked settings. Every
// problem is an Error that names the file, the line and the key, and keys
// that nothing reads are errors too, so that a typo never silently runs a
// worker at a default pace.
//
// Parse reports in rounds, so that no error follows from another: a TOML
// syntax error; else every value of the wrong type, each at its own line,
// in plain words (`rate: "20" is a string: want a number of jobs per
// second, such as 20`); else every bad setting and unknown key.
//
// One source of truth: the rules and defaults of a worker's pace are
// package pacer's (pacer.Config.WithDefaults), of a fleet package
// redisbucket's, of a sink package sink's. This package maps the
// *pacer.FieldError they return to the line of its key and never checks
// those rules itself. A package names only the first bad field, so Parse
// checks a worker's or a fleet's table again with each bad key left to
// its default, until the table passes: one pacer check shows every bad
// key of it (a required key that is bad ends the search, since it has no
// default to try). Worker.Settings and Fleet.Settings hold what the
// packages made of the file. It owns only the CLI's own settings (admin,
// log_*, status_every, drain_timeout, recover_timeout, [redis], [nats],
// [demo]) and the file's own rules (names, fleet references).
//
// Sources and sinks are plugins: Load hands each [worker.source] and
// [worker.sink] table to a BuildFunc, which decodes the settings of its
// kind with Plugin.Decode.
//
// A [fleet.NAME] table defines a limit shared through Redis (package
// redisbucket) by every worker whose fleet key names it; Fleet.Bucket
// gives its redisbucket.Config.
//
// Long on purpose: checkNesting, a scanner's one loop whose cases share
// seven variables of state (brackets open, header, level, key, line);
// split, each part would take and return them all.
package config
