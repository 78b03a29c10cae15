package qemu

import (
	"os"
	"syscall"
)

// setParentDeath has the kernel kill QEMU when dibvm dies, however it dies.
func setParentDeath(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// tieToParent needs nothing more on Linux: see setParentDeath.
func tieToParent(p *Process) (*os.File, error) { return nil, nil }
