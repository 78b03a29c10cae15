package cli

import "golang.org/x/sys/unix"

// hostMemoryMiB is the host's physical memory, or 0 when unknown.
func hostMemoryMiB() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit) >> 20
}
