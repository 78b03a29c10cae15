package qemu

import (
	"os"
	"syscall"
)

// maxRSS reads the peak RSS from the rusage of an exited process; Linux
// counts it in KiB.
func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024
	}
	return 0
}

// SelfMaxRSS is this process's own peak RSS in bytes.
func SelfMaxRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}
