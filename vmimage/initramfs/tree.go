// Package initramfs assembles a root filesystem in memory and writes it as
// a newc cpio archive, the format the Linux kernel unpacks into its
// initial tmpfs.
//
// The tree lives in memory rather than on the host's disk so that building
// it needs no privileges and works on hosts whose filesystems cannot hold
// a Linux tree (case-insensitive macOS volumes, for one).
package initramfs

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Node is one file, directory or symlink in a Tree.
type Node struct {
	Mode fs.FileMode // type bits and permissions, as io/fs defines them
	Data []byte      // a regular file's content
	Link string      // a symlink's target
}

// Tree is a filesystem tree keyed by clean relative path ("usr/bin/sh").
type Tree struct {
	nodes map[string]*Node
	// usrMerged maps a top-level directory to the directory it is a
	// symlink to ("bin" -> "usr/bin"), so that files packaged under /bin
	// land where the merged-/usr symlink points.
	usrMerged map[string]string
}

// NewTree returns an empty tree with Debian's merged-/usr symlinks
// (/bin, /sbin, /lib, /lib64 pointing into /usr) in place.
func NewTree() *Tree {
	t := &Tree{nodes: map[string]*Node{}, usrMerged: map[string]string{}}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		t.MkdirAll("usr/"+d, 0o755)
		t.nodes[d] = &Node{Mode: fs.ModeSymlink | 0o777, Link: "usr/" + d}
		t.usrMerged[d] = "usr/" + d
	}
	return t
}

// canonical cleans name and resolves the merged-/usr top-level symlinks.
func (t *Tree) canonical(name string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	first, rest, _ := strings.Cut(name, "/")
	if target, ok := t.usrMerged[first]; ok && rest != "" {
		return target + "/" + rest
	}
	return name
}

// MkdirAll adds directory name and any missing parents.
func (t *Tree) MkdirAll(name string, perm fs.FileMode) {
	name = t.canonical(name)
	if name == "" || name == "." {
		return
	}
	if n, ok := t.nodes[name]; ok && (n.Mode.IsDir() || n.Mode&fs.ModeSymlink != 0) {
		return
	}
	t.MkdirAll(path.Dir(name), 0o755)
	t.nodes[name] = &Node{Mode: fs.ModeDir | perm.Perm()}
}

// WriteFile adds a regular file, replacing whatever was at name.
func (t *Tree) WriteFile(name string, data []byte, perm fs.FileMode) {
	name = t.canonical(name)
	t.MkdirAll(path.Dir(name), 0o755)
	t.nodes[name] = &Node{Mode: perm & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), Data: data}
}

// Symlink adds a symbolic link at name pointing to target.
func (t *Tree) Symlink(target, name string) {
	name = t.canonical(name)
	if _, ok := t.usrMerged[name]; ok {
		return // the merged-/usr links are fixed
	}
	t.MkdirAll(path.Dir(name), 0o755)
	t.nodes[name] = &Node{Mode: fs.ModeSymlink | 0o777, Link: target}
}

// Get returns the node at name, if any.
func (t *Tree) Get(name string) (*Node, bool) {
	n, ok := t.nodes[t.canonical(name)]
	return n, ok
}

// Remove deletes name and everything below it.
func (t *Tree) Remove(name string) {
	name = t.canonical(name)
	for p := range t.nodes {
		if p == name || strings.HasPrefix(p, name+"/") {
			delete(t.nodes, p)
		}
	}
}

// Walk calls fn for every node whose path has prefix dir, in path order.
func (t *Tree) Walk(dir string, fn func(name string, n *Node)) {
	dir = t.canonical(dir)
	for _, p := range t.sortedPaths() {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			fn(p, t.nodes[p])
		}
	}
}

// AddTarEntry adds one entry of a tar archive (e.g. a .deb's data.tar).
// Hard links become copies of their target, which must come earlier in
// the archive, as tar writes them. Device nodes and FIFOs are skipped:
// the appliance gets /dev from devtmpfs.
func (t *Tree) AddTarEntry(hdr *tar.Header, r io.Reader) error {
	name := hdr.Name
	mode := fs.FileMode(hdr.Mode).Perm() | fileModeBits(hdr.Mode)
	switch hdr.Typeflag {
	case tar.TypeDir:
		t.MkdirAll(name, mode)
		if n, ok := t.nodes[t.canonical(name)]; ok && n.Mode.IsDir() {
			n.Mode = fs.ModeDir | mode
		}
	case tar.TypeReg:
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		t.WriteFile(name, data, mode)
	case tar.TypeSymlink:
		t.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		src, ok := t.nodes[t.canonical(hdr.Linkname)]
		if !ok || !src.Mode.IsRegular() {
			return fmt.Errorf("hard link to %s, which is not a file seen earlier", hdr.Linkname)
		}
		t.WriteFile(name, src.Data, mode)
	}
	return nil
}

func fileModeBits(m int64) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

func (t *Tree) sortedPaths() []string {
	paths := make([]string, 0, len(t.nodes))
	for p := range t.nodes {
		paths = append(paths, p)
	}
	// Sorting puts every directory before what it holds.
	sort.Strings(paths)
	return paths
}

// Size is the total size of the regular files in the tree.
func (t *Tree) Size() int64 {
	var n int64
	for _, node := range t.nodes {
		n += int64(len(node.Data))
	}
	return n
}
