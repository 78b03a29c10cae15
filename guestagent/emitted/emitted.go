// Package emitted keeps the directory where hooks write files beside the
// image (IMAGE_NAME is a path in it) and checks, after each phase, that
// what is there can go back to the host: regular files named as DIB's
// elements name them, within api's bounds. A file that cannot is an
// error that names it and the phase, never a file left behind unsaid.
package emitted

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Dir is the directory of the files hooks emit.
type Dir struct {
	Path  string // the directory; IMAGE_NAME is Path/Image
	Image string // the image's name, without directory or type
	// Skip names a directory passed over: the manifests'
	// (IMAGE_NAME.d, DIB's DIB_MANIFEST_SAVE_DIR), which comes back with
	// the manifests.
	Skip string
	// Record is where the phase that wrote each file is kept, beside the
	// directory on the scratch disk: a build resumed from a checkpoint
	// finds its files there and must still say which phase wrote them.
	// Empty: kept in memory only.
	Record string

	phase map[string]string // file name → the phase after which it was first seen
}

// ImageName is what hooks get as IMAGE_NAME.
func (d *Dir) ImageName() string { return filepath.Join(d.Path, d.Image) }

// Check looks at the directory after phase: each entry must be a
// regular file of a name api.CheckEmittedName takes (a link is refused,
// never followed), and together they must be within api's bounds. It
// returns the files by name, each with the phase after which it was
// first seen and its size, the offset left for the output disk to fill.
func (d *Dir) Check(phase string) ([]api.EmittedFile, error) {
	entries, err := os.ReadDir(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s removed %s, the directory of IMAGE_NAME (%s): the files hooks write beside the image go there", phase, d.Path, d.ImageName())
	}
	if err != nil {
		return nil, err
	}
	if err := d.load(); err != nil {
		return nil, err
	}
	var files []api.EmittedFile
	var total int64
	for _, e := range entries {
		if e.Name() == d.Skip && e.IsDir() {
			continue
		}
		f, err := d.check(e, phase)
		if err != nil {
			return nil, err
		}
		if len(files) == api.MaxEmittedFiles {
			return nil, d.refuse(phase, e.Name(), "it is one file more than the %d that may come back beside the image", api.MaxEmittedFiles)
		}
		if total += f.Size; total > api.MaxEmittedTotal {
			return nil, d.refuse(phase, e.Name(), "with it the files beside the image come to more than %d GiB", api.MaxEmittedTotal>>30)
		}
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b api.EmittedFile) int { return strings.Compare(a.Name, b.Name) })
	return files, d.save()
}

// load reads the record of earlier phases, once.
func (d *Dir) load() error {
	if d.phase != nil {
		return nil
	}
	d.phase = map[string]string{}
	if d.Record == "" {
		return nil
	}
	data, err := os.ReadFile(d.Record)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &d.phase); err != nil {
		return fmt.Errorf("%s, the record of which phase wrote the files beside the image: %w", d.Record, err)
	}
	return nil
}

// save writes the record, so that it is in the tree a checkpoint keeps.
func (d *Dir) save() error {
	if d.Record == "" {
		return nil
	}
	data, err := json.Marshal(d.phase)
	if err != nil {
		return err
	}
	return os.WriteFile(d.Record, data, 0o644)
}

// check is one entry of the directory, as the host would take it.
func (d *Dir) check(e fs.DirEntry, phase string) (api.EmittedFile, error) {
	name := e.Name()
	if err := api.CheckEmittedName(d.Image, name); err != nil {
		return api.EmittedFile{}, d.refuse(phase, name, "%v; only such files come back to the host", err)
	}
	info, err := os.Lstat(filepath.Join(d.Path, name)) // a link is looked at, not followed
	if err != nil {
		return api.EmittedFile{}, err
	}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return api.EmittedFile{}, d.refuse(phase, name, "it is a symbolic link, which is not followed: copy the file there instead")
	case !info.Mode().IsRegular():
		return api.EmittedFile{}, d.refuse(phase, name, "it is a %s: only regular files come back to the host", kind(info.Mode()))
	case info.Size() > api.MaxEmittedFile:
		return api.EmittedFile{}, d.refuse(phase, name, "it is %d MiB, more than the %d GiB a file beside the image may be", info.Size()>>20, api.MaxEmittedFile>>30)
	}
	if _, seen := d.phase[name]; !seen {
		d.phase[name] = phase
	}
	return api.EmittedFile{Name: name, Phase: d.phase[name], Size: info.Size()}, nil
}

// refuse is the error for an entry that cannot go back to the host.
func (d *Dir) refuse(phase, name, format string, args ...any) error {
	return fmt.Errorf("%s: a hook left %s beside the image, which cannot come back to the host: %s",
		phase, filepath.Join(d.Path, name), fmt.Sprintf(format, args...))
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
