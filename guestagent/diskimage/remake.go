package diskimage

import (
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// A filesystem the kernel filled holds the order and times of the
// writes that made it: inode numbers, block placement, directory hash
// seeds, creation times, the journal. A reproducible build's image is
// therefore made twice: once to run the hooks that need the real disk
// mounted (bootloaders, finalise.d), and then, from a copy of what they
// left, again by tools that write a filesystem from a tree in a fixed
// order with fixed times: mke2fs -d for ext2/3/4, and for vfat mkfs.vfat
// --invariant filled in name order and then stamped (fatstamp).

// epoch is the reproducible build's SOURCE_DATE_EPOCH, if it is one.
func (m *Maker) epoch() (time.Time, bool) {
	if m.Spec.SourceDateEpoch == nil {
		return time.Time{}, false
	}
	return time.Unix(*m.Spec.SourceDateEpoch, 0), true
}

// remade says whether Remake makes fs again from the tree: xfsprogs
// cannot yet make a filesystem from a tree.
func remade(fs *api.Filesystem) bool {
	return fs.MountPoint != "" && fs.Type != "xfs"
}

// Remake unmounts the image's filesystems and makes each again from its
// part of tree, a copy of the image's files, and leaves them unmounted.
// Each mount point's files are moved out of tree to be made into their
// own filesystem, so that tree is left the root filesystem's alone, with
// its mount points empty. out hears what is made.
func (img *Image) Remake(tree string, out io.Writer) error {
	m := img.maker
	epoch, ok := m.epoch()
	if !ok {
		return fmt.Errorf("the image is made again only in a reproducible build")
	}
	for i := len(img.mounts) - 1; i >= 0; i-- {
		if err := m.Unmount(img.mounts[i], 0); err != nil {
			return fmt.Errorf("unmount %s: %w", img.mounts[i], err)
		}
	}
	img.mounts = nil
	parts, err := splitTree(m.Spec.Layout, tree, epoch)
	defer joinTree(parts)
	if err != nil {
		return err
	}
	devs := img.devices()
	for i, d := range m.Spec.Layout.Devices() {
		if d.FS == nil || !remade(d.FS) {
			continue
		}
		fmt.Fprintf(out, "Making the %s filesystem at %s again from its files, in order\n", d.FS.Type, d.FS.MountPoint)
		// What the first filesystem left in blocks the second does
		// not use would stay: the device is zeroed first.
		if err := toolrun.Run(m.Run, "blkdiscard", "--zeroout", devs[i]); err != nil {
			return err
		}
		if err := m.makeFilled(devs[i], d.FS, parts[d.FS.MountPoint], epoch); err != nil {
			return fmt.Errorf("%s: %w", d.Kind, err)
		}
	}
	return nil
}

// splitTree moves each non-root mount point's files out of tree into a
// directory of their own beside it, deepest first, leaving an empty
// directory of the same mode and time in their place. It returns each
// mount point's directory, tree for "/", as far as it got.
func splitTree(l *api.Layout, tree string, epoch time.Time) (map[string]string, error) {
	var mps []string
	for _, d := range l.Devices() {
		if d.FS != nil && d.FS.MountPoint != "" && d.FS.MountPoint != "/" {
			mps = append(mps, d.FS.MountPoint)
		}
	}
	slices.SortFunc(mps, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")), strings.Compare(a, b))
	})
	parts := map[string]string{"/": tree}
	for i, mp := range mps {
		src := filepath.Join(tree, mp)
		dst := fmt.Sprintf("%s.fs%d", tree, i)
		info, err := os.Lstat(src)
		if err != nil || !info.IsDir() {
			return parts, fmt.Errorf("the mount point %s is not a directory in the image: %v", mp, err)
		}
		parent, err := os.Stat(filepath.Dir(src))
		if err != nil {
			return parts, err
		}
		if err := os.Rename(src, dst); err != nil {
			return parts, err
		}
		parts[mp] = dst
		if err := os.Mkdir(src, info.Mode().Perm()); err != nil {
			return parts, err
		}
		if err := os.Chmod(src, info.Mode().Perm()); err != nil { // past the umask
			return parts, err
		}
		if err := os.Chtimes(src, epoch, epoch); err != nil {
			return parts, err
		}
		if err := os.Chtimes(filepath.Dir(src), parent.ModTime(), parent.ModTime()); err != nil {
			return parts, err // what mke2fs reads, as the tree has it
		}
	}
	return parts, nil
}

// joinTree puts what splitTree moved out back in its place, shallowest
// first: the tree outputs are of the whole tree.
func joinTree(parts map[string]string) {
	tree := parts["/"]
	for _, mp := range slices.Sorted(maps.Keys(parts)) {
		if mp == "/" {
			continue
		}
		dir := filepath.Join(tree, mp)
		parent, err := os.Stat(filepath.Dir(dir))
		os.Remove(dir)
		os.Rename(parts[mp], dir)
		if err == nil { // the times the tree had, which a rename changes
			os.Chtimes(filepath.Dir(dir), parent.ModTime(), parent.ModTime())
		}
	}
}

// makeFilled makes fs on dev holding the files of dir.
func (m *Maker) makeFilled(dev string, fs *api.Filesystem, dir string, epoch time.Time) error {
	args, err := m.mkfsCommand(dev, fs)
	if err != nil {
		return err
	}
	if strings.HasPrefix(fs.Type, "ext") {
		// mke2fs reads the tree in name order (scandir, alphasort) and,
		// from e2fsprogs 1.47.1, clamps its times to SOURCE_DATE_EPOCH.
		args = append(args[:len(args)-1], "-d", dir, dev)
		return toolrun.Run(m.Run, args[0], args[1:]...)
	}
	// vfat: made invariant, filled in name order by mtools, stamped.
	if err := toolrun.Run(m.Run, args[0], args[1:]...); err != nil {
		return err
	}
	if err := m.fillFAT(dev, dir); err != nil {
		return err
	}
	return m.StampFAT(dev, epoch)
}

// fillFAT copies the directories and regular files under dir into the
// FAT filesystem on dev in name order, each with its modification time.
// mtools, not the kernel: Linux makes the short names of long names
// from the clock once a few are alike (namei_vfat.c), mtools numbers
// them in turn. A FAT filesystem holds nothing but directories and
// regular files.
func (m *Maker) fillFAT(dev, dir string) error {
	mtools := []string{"MTOOLS_SKIP_CHECK=1", "TZ=UTC"}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		to := "::/" + filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return toolrun.Run(m.Run, "env", append(mtools, "mmd", "-i", dev, to)...)
		case info.Mode().IsRegular():
			return toolrun.Run(m.Run, "env", append(mtools, "mcopy", "-i", dev, "-m", "-o", path, to)...)
		}
		return fmt.Errorf("%s: a FAT filesystem holds only directories and regular files", path)
	})
}

// volumeID is a FAT volume ID as blkid shows it (mkfs.vfat -i takes it
// without the dash); DIB's configurations give vfat no UUID it writes.
var volumeID = regexp.MustCompile(`^[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}$`)

// mkfsCommand is the whole mkfs command line for fs on dev, its last
// argument the device. A reproducible build's mkfs runs with
// SOURCE_DATE_EPOCH and e2fsprogs' fixed clock, an ext filesystem's
// directory hash seeded from its UUID, and vfat's invariant values.
func (m *Maker) mkfsCommand(dev string, fs *api.Filesystem) ([]string, error) {
	args, err := mkfsArgs(fs, Label(m.Spec, fs), m.mkfsOptions(fs, dev))
	if err != nil {
		return nil, err
	}
	epoch, ok := m.epoch()
	if !ok {
		return append(args, dev), nil
	}
	switch {
	case strings.HasPrefix(fs.Type, "ext") && fs.UUID != "":
		args = withExtended(args, "hash_seed="+fs.UUID)
	case fs.Type == "vfat":
		// --invariant fixes what mkfs.vfat draws or stamps; a volume ID
		// given after it still counts.
		args = slices.Insert(args, 1, "--invariant")
	}
	t := strconv.FormatInt(epoch.Unix(), 10)
	return append(append([]string{"env", "SOURCE_DATE_EPOCH=" + t, "E2FSPROGS_FAKE_TIME=" + t}, args...), dev), nil
}

// withExtended adds opt to mke2fs's extended options: to the last -E
// there is, since a later -E replaces an earlier one, or as a new one.
func withExtended(args []string, opt string) []string {
	for i := len(args) - 2; i >= 0; i-- {
		if args[i] == "-E" {
			args[i+1] += "," + opt
			return args
		}
	}
	return append(args, "-E", opt)
}
