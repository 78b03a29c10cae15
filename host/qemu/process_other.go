//go:build !linux

package qemu

import "syscall"

// setParentDeath is a no-op where the kernel has no parent-death signal;
// there dibvm stops QEMU on every exit path it controls.
func setParentDeath(a *syscall.SysProcAttr) {}
