package diskimage

import (
	"cmp"
	"errors"
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
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
// own filesystem, and moved back after, so that the tree outputs are of
// the whole tree. out hears what is made.
func (img *Image) Remake(tree string, out io.Writer) (err error) {
	m := img.maker
	epoch, ok := m.epoch()
	if !ok {
		return fmt.Errorf("the image is made again only in a reproducible build")
	}
	if err := m.checkMke2fs(); err != nil {
		return err
	}
	for len(img.mounts) > 0 {
		last := img.mounts[len(img.mounts)-1]
		if err := m.Unmount(last, unix.UMOUNT_NOFOLLOW); err != nil {
			return fmt.Errorf("unmount %s: %w", last, err)
		}
		img.mounts = img.mounts[:len(img.mounts)-1]
	}
	parts, err := splitTree(m.Spec.Layout, tree)
	defer func() { err = errors.Join(err, joinTree(parts)) }()
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

// checkMke2fs refuses an mke2fs older than 1.47.1, whose -d copies each
// file's change time as it finds it rather than clamping it to
// SOURCE_DATE_EPOCH: its filesystems would differ from build to build.
// The helper's Debian has a newer one; a mirror's older suite may not.
func (m *Maker) checkMke2fs() error {
	if !slices.ContainsFunc(m.Spec.Layout.Devices(), func(d api.Device) bool {
		return d.FS != nil && remade(d.FS) && strings.HasPrefix(d.FS.Type, "ext")
	}) {
		return nil
	}
	out, err := m.Run.Combined(nil, "mke2fs", "-V")
	if err != nil {
		return fmt.Errorf("mke2fs -V: %v: %s", err, out)
	}
	v := mke2fsVersion.FindStringSubmatch(string(out))
	if v == nil {
		return fmt.Errorf("mke2fs -V says no version: %q", out)
	}
	n := func(s string) int { i, _ := strconv.Atoi(s); return i }
	if cmp.Compare(n(v[1])*1e6+n(v[2])*1e3+n(v[3]), 1047001) < 0 {
		return fmt.Errorf("a reproducible image needs mke2fs 1.47.1 or later in the helper, which clamps the times it copies; it has %s.%s.%s", v[1], v[2], v[3])
	}
	return nil
}

var mke2fsVersion = regexp.MustCompile(`mke2fs (\d+)\.(\d+)(?:\.(\d+))?`)

// splitTree moves each non-root mount point's files out of tree into a
// directory of their own beside it, deepest first, leaving an empty
// directory in their place with the same mode, owner and time, and its
// parent's time as it was. It returns each mount point's directory, tree
// for "/", as far as it got.
func splitTree(l *api.Layout, tree string) (map[string]string, error) {
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
		if err := emptyLike(src, info); err != nil {
			return parts, err
		}
		if err := os.Chtimes(filepath.Dir(src), parent.ModTime(), parent.ModTime()); err != nil {
			return parts, err // what mke2fs reads, as the tree has it
		}
	}
	return parts, nil
}

// emptyLike makes an empty directory at path with info's mode, owner
// and times.
func emptyLike(path string, info fs.FileInfo) error {
	if err := os.Mkdir(path, 0o700); err != nil {
		return err
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if err := os.Chmod(path, info.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid)); err != nil {
		return err
	}
	return os.Chtimes(path, info.ModTime(), info.ModTime())
}

// joinTree puts what splitTree moved out back in its place, shallowest
// first, each parent's time kept: the tree outputs are of the whole tree.
func joinTree(parts map[string]string) error {
	tree := parts["/"]
	var errs []error
	for _, mp := range slices.Sorted(maps.Keys(parts)) {
		if mp == "/" {
			continue
		}
		dir := filepath.Join(tree, mp)
		parent, err := os.Stat(filepath.Dir(dir))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Rename(parts[mp], dir); err != nil {
			errs = append(errs, fmt.Errorf("put %s back in the tree: %w", mp, err))
			continue
		}
		errs = append(errs, os.Chtimes(filepath.Dir(dir), parent.ModTime(), parent.ModTime()))
	}
	return errors.Join(errs...)
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
	// mtools reads no configuration of the helper's or of root's.
	mtools := []string{"MTOOLSRC=/dev/null", "MTOOLS_SKIP_CHECK=1", "TZ=UTC"}
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
	for i := len(args) - 1; i >= 0; i-- {
		switch {
		case args[i] == "-E" && i+1 < len(args):
			args[i+1] += "," + opt
			return args
		case strings.HasPrefix(args[i], "-E") && len(args[i]) > 2:
			args[i] += "," + opt
			return args
		}
	}
	return append(args, "-E", opt)
}
