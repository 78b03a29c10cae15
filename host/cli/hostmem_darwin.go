package cli

import "golang.org/x/sys/unix"

// hostMemoryMiB is the host's physical memory, or 0 when unknown.
func hostMemoryMiB() int64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0
	}
	return int64(n >> 20)
}
