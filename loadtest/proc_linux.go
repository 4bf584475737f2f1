package loadtest

import (
	"os/exec"
	"syscall"
)

// setParentDeath kills a worker if the parent dies without closing its
// input (closing the input ends a worker in any case).
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
