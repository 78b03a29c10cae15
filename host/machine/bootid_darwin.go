package machine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// bootID names this boot of the host: macOS has no boot ID, but the
// kernel's boot time serves as one.
func bootID() string {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return ""
	}
	return fmt.Sprintf("boottime-%d.%06d", tv.Sec, tv.Usec)
}
