//go:build !linux

package qemu

import (
	"os"
	"syscall"
)

// setParentDeath does nothing here: there is no parent-death signal, so
// tieToParent starts the watchdog instead.
func setParentDeath(a *syscall.SysProcAttr) {}

func tieToParent(p *Process) (*os.File, error) { return startWatchdog(p.Pid()) }
