package rpmstandin

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/dibvm/dibvm/vmimage/debrepo"
)

// stager unpacks .deb data into a tree that an unprivileged user can
// make and remove: every directory is kept open to its owner, and what
// the tree cannot hold (owners, the setgid bit of a group the user is
// not in, a directory's own mode) is recorded in attrs.
type stager struct {
	root  string
	attrs map[string]Attr
	size  int64
}

// unpack adds the data of the .deb at file. A later package's file
// replaces an earlier one's, as dpkg's Replaces would.
func (s *stager) unpack(file string) error {
	return debrepo.WalkData(file, func(hdr *tar.Header, r io.Reader) error {
		p, ok := canonical(hdr.Name)
		if !ok || !keepPath(p) {
			return nil
		}
		return s.add(p, hdr, r)
	})
}

func (s *stager) add(p string, hdr *tar.Header, r io.Reader) error {
	dst := filepath.Join(s.root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	mode := hdr.FileInfo().Mode()
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		s.record(p, mode, hdr, 0o755)
		return nil
	case tar.TypeSymlink:
		s.clear(dst)
		return os.Symlink(hdr.Linkname, dst)
	case tar.TypeLink:
		target, ok := canonical(hdr.Linkname)
		if !ok {
			return fmt.Errorf("hard link to %s", hdr.Linkname)
		}
		s.clear(dst)
		// rpm wants one mode and owner for all names of a file.
		if a, ok := s.attrs["/"+target]; ok {
			s.attrs["/"+p] = a
		}
		return os.Link(filepath.Join(s.root, filepath.FromSlash(target)), dst)
	case tar.TypeReg:
		s.clear(dst)
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		s.size += n
		onDisk := mode.Perm() | 0o600
		s.record(p, mode, hdr, onDisk)
		return os.Chmod(dst, onDisk)
	default:
		return fmt.Errorf("%s: a tar entry of type %q, which no package here should hold", p, hdr.Typeflag)
	}
}

// clear removes what is at dst, unless it is a directory: a later
// package's entry wins.
func (s *stager) clear(dst string) {
	if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
		os.Remove(dst)
	}
}

// record notes p's mode and owner in attrs where the tree does not
// hold them as they are: where its mode on disk is not onDisk's, or
// it is not root's.
func (s *stager) record(p string, mode fs.FileMode, hdr *tar.Header, onDisk fs.FileMode) {
	user, group := ownerName(hdr.Uname, hdr.Uid), ownerName(hdr.Gname, hdr.Gid)
	special := mode & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	key := "/" + p
	if mode.Perm() != onDisk || special != 0 || user != "" || group != "" {
		s.attrs[key] = Attr{Mode: mode.Perm() | special, User: user, Group: group}
	} else {
		delete(s.attrs, key)
	}
}

// ownerName is a tar entry's owner name, "" for root. Debian's
// packages name their owners; a number alone is kept as it is.
func ownerName(name string, id int) string {
	if name == "root" || (name == "" && id == 0) {
		return ""
	}
	if name == "" {
		return fmt.Sprint(id)
	}
	return name
}

// writeFile writes a generated file into the tree, replacing what is
// there.
func (s *stager) writeFile(p string, data []byte, mode fs.FileMode) error {
	dst := filepath.Join(s.root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	s.clear(dst)
	delete(s.attrs, "/"+p)
	if err := os.WriteFile(dst, data, mode); err != nil {
		return err
	}
	s.size += int64(len(data))
	return os.Chmod(dst, mode)
}

// symlink makes p a link to target, replacing what is there.
func (s *stager) symlink(target, p string) error {
	dst := filepath.Join(s.root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	s.clear(dst)
	delete(s.attrs, "/"+p)
	return os.Symlink(target, dst)
}

func (s *stager) exists(p string) bool {
	_, err := os.Lstat(filepath.Join(s.root, filepath.FromSlash(p)))
	return err == nil
}

func (s *stager) read(p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.root, filepath.FromSlash(path.Clean(p))))
}
