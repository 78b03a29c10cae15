package qemu

import "syscall"

// setParentDeath has the kernel kill QEMU when dibvm dies, however it dies.
func setParentDeath(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
