package elements

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// An element tree may come from someone the user does not trust, and the
// host reads it before anything is sandboxed. So the host reads an
// element only through an os.Root opened on its directory, which refuses
// any path that resolves outside it, and before the element is used its
// whole tree is checked (checkTree), so that what would leave the tree is
// an error that names the element, the file and where it leads, rather
// than a file of the host shipped into the VM.

// treeFS is an element tree read through its root, which keeps every
// path inside it. Between the check of the tree and a read, a local user
// could swap a file for a pipe, whose open would block the host: files
// are opened without blocking and must be regular files or directories.
type treeFS struct {
	rootFS // the root's FS, for ReadDir, Stat, ReadLink and Lstat
	root   *os.Root
}

// rootFS is what os.Root's FS provides besides Open and ReadFile.
type rootFS interface {
	fs.StatFS
	fs.ReadDirFS
	fs.ReadLinkFS
}

func newTreeFS(root *os.Root) treeFS { return treeFS{rootFS: root.FS().(rootFS), root: root} }

func (t treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := t.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("is a %s, not a file", kind(fi.Mode()))}
	}
	return f, nil
}

// ReadFile reads through Open, which the root's own ReadFile would skip.
func (t treeFS) ReadFile(name string) ([]byte, error) {
	f, err := t.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// EscapeError is a file of an element tree that would make the host read
// outside the element's directory, or is not a file an element can hold.
type EscapeError struct {
	Element string // the element's name
	Dir     string // where the element is
	File    string // the file, relative to the element
	Target  string // for a symlink, where it points
	Reason  string
}

func (e *EscapeError) Error() string {
	what := e.File
	if e.Target != "" {
		what += " -> " + e.Target
	}
	return fmt.Sprintf("element %s (%s): %s: %s", e.Element, e.Dir, what, e.Reason)
}

// checkTree refuses an element whose tree leads outside its directory:
// a symlink whose target is absolute or climbs out with "..", directly
// or through other links; a regular file with hard links outside the
// tree; and pipes, sockets and devices, which are nothing an element
// needs and which a read on the host could hang on. Symlinks that stay
// inside are fine: they travel as symlinks, as DIB's cp -a keeps them.
func checkTree(e *Element) error {
	type fileLinks struct {
		file  string
		nlink uint64
		seen  uint64
	}
	links := map[fileID]*fileLinks{}
	err := fs.WalkDir(e.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("element %s (%s): %w", e.Name, e.Path, err)
		}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			return checkLink(e, p)
		case !t.IsRegular():
			return &EscapeError{Element: e.Name, Dir: e.Path, File: p,
				Reason: fmt.Sprintf("is a %s, and an element holds only files, directories and symlinks: remove it", kind(t))}
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, p, err)
		}
		e.Size += info.Size()
		if id, n, ok := hardLinks(info); ok && n > 1 {
			fl := links[id]
			if fl == nil {
				fl = &fileLinks{file: p, nlink: n}
				links[id] = fl
			}
			fl.seen++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, fl := range links {
		if fl.seen < fl.nlink {
			return &EscapeError{Element: e.Name, Dir: e.Path, File: fl.file,
				Reason: fmt.Sprintf("has %d hard links, %d of them outside the element: an element's files must be its own; copy the file instead of linking it (uv and conda install by hard links: copy the element tree, or install with UV_LINK_MODE=copy)", fl.nlink, fl.nlink-fl.seen)}
		}
	}
	return nil
}

// checkLink refuses the symlink at p if it leads out of the element.
func checkLink(e *Element, p string) error {
	target, err := fs.ReadLink(e.FS, p)
	if err != nil {
		return fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, p, err)
	}
	refuse := func(reason string) error {
		return &EscapeError{Element: e.Name, Dir: e.Path, File: p, Target: target, Reason: reason}
	}
	const never = ", and dibvm never reads host files through an element"
	switch esc := SymlinkEscape(e.FS, p, target); {
	case esc == "":
		return nil
	case esc == EscapeAbsolute:
		return refuse("an absolute symlink leads outside the element" + never + ": copy the file into the element, or make the link in a hook")
	case esc == EscapeUp:
		return refuse("the symlink leads outside the element" + never + ": copy the file into the element")
	case esc == EscapeLoop:
		return refuse("the symlink is a loop: remove it")
	default:
		return refuse("the symlink leads outside the element through another link" + never + " (" + strings.TrimPrefix(esc, EscapeThrough+": ") + ")")
	}
}

// How a symlink leads outside its tree (see SymlinkEscape).
const (
	EscapeAbsolute = "an absolute symlink leads outside"
	EscapeUp       = "the symlink leads outside"
	EscapeLoop     = "the symlink is a loop"
	EscapeThrough  = "the symlink leads outside through another link"
)

// SymlinkEscape says how the symlink at p of the tree fsys, whose text
// is target, leads outside the tree, as one of the Escape reasons (the
// last followed by ": " and what refused it), or "" when it stays
// inside or dangles (a dangling link travels as a link, as cp -a keeps
// it). fsys must resolve paths only inside its root, as an os.Root's FS
// does, so that a chain of links that leaves the tree fails to resolve.
func SymlinkEscape(fsys fs.FS, p, target string) string {
	if path.IsAbs(target) {
		return EscapeAbsolute
	}
	if rel := path.Join(path.Dir(p), target); rel == ".." || strings.HasPrefix(rel, "../") {
		return EscapeUp
	}
	// The link stays inside by its own text; one it leads through may not.
	// The root resolves the whole chain and refuses an escape on the way.
	switch _, err := fs.Stat(fsys, p); {
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return ""
	case errors.Is(err, syscall.ELOOP):
		return EscapeLoop
	default:
		return EscapeThrough + ": " + err.Error()
	}
}

func kind(m fs.FileMode) string {
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
