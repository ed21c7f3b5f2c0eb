// Package loadgen puts numbered jobs into a queue at a given rate, for
// pacer enqueue and pacer publish, drawing a progress bar on a terminal.
package loadgen
