package initramfs

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"

	"github.com/u-root/u-root/pkg/cpio"
)

// WriteCPIO writes the tree as a newc archive, owned by root, with a
// fixed timestamp so that equal trees give equal archives.
func (t *Tree) WriteCPIO(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := cpio.Newc.Writer(bw)
	for _, p := range t.sortedPaths() {
		if err := cw.WriteRecord(record(p, t.nodes[p])); err != nil {
			return err
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return err
	}
	return bw.Flush()
}

func record(name string, n *Node) cpio.Record {
	info := cpio.Info{Name: name, Mode: linuxMode(n.Mode), NLink: 1}
	switch {
	case n.Mode.IsDir():
		info.NLink = 2
		return cpio.Record{ReaderAt: bytes.NewReader(nil), Info: info}
	case n.Mode&fs.ModeSymlink != 0:
		info.FileSize = uint64(len(n.Link))
		return cpio.Record{ReaderAt: bytes.NewReader([]byte(n.Link)), Info: info}
	default:
		info.FileSize = uint64(len(n.Data))
		return cpio.Record{ReaderAt: bytes.NewReader(n.Data), Info: info}
	}
}

// linuxMode converts an io/fs mode to the st_mode bits cpio records.
func linuxMode(m fs.FileMode) uint64 {
	mode := uint64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	switch {
	case m.IsDir():
		mode |= cpio.S_IFDIR
	case m&fs.ModeSymlink != 0:
		mode |= cpio.S_IFLNK
	default:
		mode |= cpio.S_IFREG
	}
	return mode
}
