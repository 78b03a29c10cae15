package sysinit

import (
	"golang.org/x/sys/unix"
)

// Poweroff flushes the filesystems and powers the machine off.
func Poweroff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
