//go:build unix

package sink

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killGroupOnCancel runs cmd in a process group of its own and makes the
// end of its context SIGKILL the whole group, so a shell's children die
// with it instead of running on as orphans that hold its output open.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone // the whole group has already exited
		}
		return err
	}
}

// killGroup SIGKILLs what is left of cmd's process group once cmd has
// run: the background processes (daemons, a shell's "cmd &") of a command
// that exited on its own, so that no process a job started outlives the
// job. The group's id cannot name other processes while any of the
// command's are left, as a process group keeps its id in use; once none
// is left the kill finds none (ESRCH), unless the id was handed out again
// in the moment since the command was reaped, which takes the whole pid
// space wrapping around.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.Process.Pid <= 0 {
		return // it never started
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
