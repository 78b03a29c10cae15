package hostpath

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/dibvm/dibvm/elements"
)

var epoch = time.Unix(0, 0)

// add packs the host path abs as dir/name in the tar. A symlink at abs
// itself is followed: the caller named it. Files are opened without
// blocking, so that a named pipe refuses rather than hangs.
func (p *packer) add(dir, name, abs string, kind Kind) error {
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no such file or directory here: the variable names %s on this machine, which dibvm lends the build read-only", kind)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := p.header(dir, 0o755); err != nil {
		return err
	}
	switch {
	case fi.Mode().IsRegular() && kind&File != 0:
		return p.file(path.Join(dir, name), fi, f)
	case fi.IsDir() && kind&Dir != 0:
		return p.tree(path.Join(dir, name), abs)
	case fi.Mode().IsRegular():
		return fmt.Errorf("is a file, and the variable names %s", kind)
	case fi.IsDir():
		return fmt.Errorf("is a directory, and the variable names %s", kind)
	}
	return fmt.Errorf("is a %s, and the variable names %s", special(fi.Mode()), kind)
}

// tree packs the directory abs as dst, read through a root on it.
func (p *packer) tree(dst, abs string) error {
	root, err := os.OpenRoot(abs)
	if err != nil {
		return err
	}
	defer root.Close()
	fsys := root.FS()
	return fs.WalkDir(fsys, ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := path.Join(dst, rel)
		switch t := d.Type(); {
		case t.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return p.header(name, info.Mode().Perm())
		case t&fs.ModeSymlink != 0:
			return p.link(fsys, rel, name)
		case !t.IsRegular():
			return fmt.Errorf("%s: is a %s: a lent directory holds only files, directories and symlinks", rel, special(t))
		}
		f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = errors.New("changed while it was read")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if err := p.file(name, fi, f); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
}

// link packs the symlink rel of fsys as name, if it stays inside.
func (p *packer) link(fsys fs.FS, rel, name string) error {
	target, err := fs.ReadLink(fsys, rel)
	if err != nil {
		return err
	}
	if esc := elements.SymlinkEscape(fsys, rel, target); esc != "" {
		return fmt.Errorf("%s -> %s: %s the directory, and dibvm lends nothing the caller did not name: copy the file into the directory", rel, target, esc)
	}
	if err := p.count(0); err != nil {
		return err
	}
	return p.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch})
}

// file packs the open regular file f as name.
func (p *packer) file(name string, fi fs.FileInfo, f io.Reader) error {
	if err := p.count(fi.Size()); err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(f, fi.Size()+1))
	if err != nil {
		return err
	}
	if int64(len(data)) != fi.Size() {
		return errors.New("changed while it was read")
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: epoch}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = p.tw.Write(data)
	return err
}

// header packs a directory.
func (p *packer) header(name string, perm fs.FileMode) error {
	if err := p.count(0); err != nil {
		return err
	}
	return p.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(perm), ModTime: epoch})
}

// count takes one entry of size bytes against the limits.
func (p *packer) count(size int64) error {
	p.entries++
	p.bytes += size
	switch {
	case p.entries > p.limits.Entries:
		return fmt.Errorf("more than the %d files and directories a build may borrow from the host: lend a smaller directory, or fetch the data in a hook", p.limits.Entries)
	case p.bytes > p.limits.Bytes:
		return fmt.Errorf("more than the %d MiB a build may borrow from the host: lend less, or fetch large data in a hook (an image to build from is lent as a disk: DIB_LOCAL_IMAGE)", p.limits.Bytes>>20)
	}
	return nil
}

func special(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
