package elements

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

// WriteTar writes what the guest needs of a build's elements as a tar
// stream, api.ElementsTar: the merged hook tree under api.HooksDir (what
// DIB calls $TMP_HOOKS_PATH) and each element's own files under
// api.ElementsDir/<name>/.
// Modes and symlinks are kept (every symlink stays inside its element:
// see checkTree); files are owned by root.
func WriteTar(w io.Writer, els []*Element, h *Hooks) error {
	tw := tar.NewWriter(w)
	paths := make([]string, 0, len(h.Files))
	for p := range h.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	for _, p := range paths {
		hook := h.Files[p]
		if err := addDirs(tw, dirs, path.Dir(api.HooksDir+"/"+p)); err != nil {
			return err
		}
		// A link moved by an install type would point elsewhere from its
		// new place; it travels as the file it leads to.
		if hook.Link != "" && hook.Source == "" {
			if err := addLink(tw, api.HooksDir+"/"+p, hook.Link); err != nil {
				return err
			}
			continue
		}
		if err := addFile(tw, hook.Element, hook.File(), api.HooksDir+"/"+p, hook.Mode); err != nil {
			return err
		}
	}
	for _, e := range els {
		if err := addElement(tw, dirs, e); err != nil {
			return err
		}
	}
	return tw.Close()
}

var epoch = time.Unix(0, 0)

func addDirs(tw *tar.Writer, done map[string]bool, dir string) error {
	if dir == "." || dir == "" || done[dir] {
		return nil
	}
	if err := addDirs(tw, done, path.Dir(dir)); err != nil {
		return err
	}
	done[dir] = true
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch})
}

func addFile(tw *tar.Writer, e *Element, src, dst string, mode fs.FileMode) error {
	data, err := fs.ReadFile(e.FS, src)
	if err != nil {
		return fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, src, err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: dst, Mode: int64(mode.Perm()), Size: int64(len(data)), ModTime: epoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}

func addLink(tw *tar.Writer, dst, target string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: dst, Linkname: target, Mode: 0o777, ModTime: epoch})
}

// addElement writes all of e under api.ElementsDir/<name>/.
func addElement(tw *tar.Writer, dirs map[string]bool, e *Element) error {
	base := api.ElementsDir + "/" + e.Name
	return fs.WalkDir(e.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("element %s (%s): %w", e.Name, e.Path, err)
		}
		dst := path.Join(base, p)
		switch {
		case d.IsDir():
			return addDirs(tw, dirs, dst)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(e.FS, p)
			if err != nil {
				return fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, p, err)
			}
			return addLink(tw, dst, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, p, err)
			}
			return addFile(tw, e, p, dst, mode(e, p, info.Mode()))
		}
		return nil // sockets, devices: nothing an element needs
	})
}
