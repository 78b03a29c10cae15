//go:build unix

package session

import (
	"os"
	"syscall"
)

// allocated is how much of the host's disk the sparse file at path
// takes: what the guest has written to it.
func allocated(path string) (int64, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(st.Blocks) * 512, true
}
