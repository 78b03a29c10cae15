package qemu

import "golang.org/x/sys/unix"

// hvfSupported asks the kernel whether Hypervisor.framework can run
// guests here: kern.hv_support is 0 inside most macOS VMs (nested
// virtualization) and on Macs too old for it, where QEMU's hvf would
// fail at start.
func hvfSupported() (bool, string) {
	v, err := unix.SysctlUint32("kern.hv_support")
	if err != nil {
		return false, "sysctl kern.hv_support: " + err.Error()
	}
	if v == 0 {
		return false, "kern.hv_support is 0: this Mac (or the VM it is) offers no Hypervisor.framework"
	}
	return true, ""
}
