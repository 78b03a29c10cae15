//go:build unix

package elements

import (
	"io/fs"
	"syscall"
)

// fileID is a file's device and inode: the same for all of its hard links.
type fileID struct{ dev, ino uint64 }

// hardLinks reports the file's identity and how many hard links it has.
func hardLinks(fi fs.FileInfo) (fileID, uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, 0, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, uint64(st.Nlink), true
}
