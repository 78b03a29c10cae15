// Package iso writes the read-only input disk that carries a build's inputs
// into the guest.
//
// kdomanski/iso9660 writes plain ISO 9660 without Rock Ridge: names are
// folded to lower-case 8.3-like names and modes and symlinks are lost. So
// the disk holds a few flat files with short lower-case names (a JSON
// config, tar archives that keep names, modes and links), each added from
// memory, never from the host path directly.
package iso

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"

	"github.com/kdomanski/iso9660"
)

// VolumeID labels the input disk.
const VolumeID = "DIBVM_INPUT"

var safeName = regexp.MustCompile(`^[a-z0-9_]{1,24}(\.[a-z0-9]{1,8})?$`)

// File is one file for the disk. Its content is held in memory, not read
// from a stream, so that the same files can be written again: a VM that
// falls back to TCG from a hypervisor that did not start the guest boots
// from a fresh disk.
type File struct {
	Name string // lower case, [a-z0-9_], at most one dot and an extension of up to 8, e.g. "config.json"
	Data []byte // its content
}

// Write makes an ISO image at path holding files.
func Write(path string, files []File) error {
	w, err := iso9660.NewWriter()
	if err != nil {
		return err
	}
	defer w.Cleanup()
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		if !safeName.MatchString(f.Name) {
			return fmt.Errorf("input disk: %q is not a name the ISO 9660 writer keeps as is", f.Name)
		}
		if err := w.AddFile(bytes.NewReader(f.Data), f.Name); err != nil {
			return fmt.Errorf("input disk: add %s: %w", f.Name, err)
		}
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := w.WriteTo(out, VolumeID); err != nil {
		return fmt.Errorf("input disk: %w", err)
	}
	return out.Close()
}
