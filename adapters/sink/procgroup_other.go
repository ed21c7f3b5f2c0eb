//go:build !unix

package sink

import "os/exec"

// killGroupOnCancel leaves exec.CommandContext's default, which kills only
// the command's own process: this platform has no process groups to kill.
func killGroupOnCancel(*exec.Cmd) {}

// killGroup does nothing: this platform has no process groups to kill, and
// a background process the command started outlives it.
func killGroup(*exec.Cmd) {}
