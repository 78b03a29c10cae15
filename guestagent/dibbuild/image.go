package dibbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/guestagent/api"
)

// image is the disk being built on a loop device over the output disk,
// limited to the image's size so that a GPT's backup header lands at its
// real end.
type image struct {
	loop   string // /dev/loopN
	size   int64
	parts  []string // partition devices, in layout order
	mounts []string // image filesystems mounted under the target, in order
}

const mib = 1 << 20

// imageSize sizes the image as disk-image-create does: the tree's du
// divided by 0.6 (or plus DIB_IMAGE_EXTRA_SIZE GB), plus the ext4
// journal, plus 525 MiB for block-device-efi's large ESP, rounded up to
// 64 KiB; or DIB_IMAGE_SIZE GB exactly. It never returns less than the
// fixed-size partitions, the tree and the journal need; mke2fs places a
// journal only in at most half the free blocks, and -i 4096 spends a
// sixteenth of them on inodes, so the journal counts 2.25 times.
func imageSize(treeBytes int64, s *api.Spec) int64 {
	const kib = 1024
	var journal int64
	if s.Layout.Root().Type == "ext4" {
		journal = journalMiB(s) * mib
	}
	var size int64
	if s.ImageSizeGB > 0 {
		size = int64(s.ImageSizeGB * (1 << 30))
	} else {
		if s.ExtraSizeGB > 0 {
			size = treeBytes + int64(s.ExtraSizeGB*(1<<30))
		} else {
			size = int64(float64(treeBytes) / 0.6)
		}
		size += journal
		for _, e := range s.Elements {
			if e == "block-device-efi" {
				size += 525 * mib
			}
		}
	}
	// Each partition may lose up to a MiB to alignment and an EBR.
	if least := blockdevice.Fixed(s.Layout) + treeBytes + treeBytes/10 + journal*9/4 + int64(len(s.Layout.Partitions)+2)*mib; size < least {
		size = least
	}
	return (size + 64*kib - 1) / (64 * kib) * (64 * kib)
}

// journalMiB is the ext4 root's journal: DIB_JOURNAL_SIZE, else DIB's
// 64 MiB, large enough for the resizes a cloud image sees.
func journalMiB(s *api.Spec) int64 {
	if s.JournalMiB > 0 {
		return int64(s.JournalMiB)
	}
	return 64
}

// makeImage partitions and formats the image and mounts it at target.
func (b *build) makeImage(disk string, size int64) (*image, error) {
	l := b.spec.Layout
	plan, err := blockdevice.Place(l, size)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", "--sizelimit", strconv.FormatInt(size, 10), disk).Output()
	if err != nil {
		return nil, fmt.Errorf("losetup %s: %w", disk, err)
	}
	img := &image{loop: strings.TrimSpace(string(out)), size: size}
	if err := partition(img.loop, l, plan); err != nil {
		return img, err
	}
	for _, e := range plan.Partitions {
		dev := fmt.Sprintf("%sp%d", img.loop, e.Number)
		if err := waitFor(dev, 10*time.Second); err != nil {
			return img, err
		}
		img.parts = append(img.parts, dev)
	}
	for i, p := range l.Partitions {
		if p.FS == nil {
			continue
		}
		if err := mkfs(img.parts[i], p.FS, b.label(p.FS), b.mkfsOptions(p.FS, img.parts[i])); err != nil {
			return img, fmt.Errorf("partition %s: %w", p.Name, err)
		}
	}
	return img, b.mountImage(img)
}

// label is a filesystem's label: its own, or DIB's root label for /.
func (b *build) label(fs *api.Filesystem) string {
	if fs.Label != "" {
		return fs.Label
	}
	if fs.MountPoint == "/" {
		return b.spec.RootLabel
	}
	return ""
}

// partition writes the planned partition table with sfdisk, every
// partition at its planned sector. On an MBR the extended partition
// comes just before the first logical one, which makes sfdisk number the
// logical partitions from 5.
func partition(dev string, l *api.Layout, plan *blockdevice.Plan) error {
	var script strings.Builder
	fmt.Fprintf(&script, "label: %s\nunit: sectors\n", map[string]string{"mbr": "dos", "gpt": "gpt"}[l.Label])
	for i, p := range l.Partitions {
		e := plan.Partitions[i]
		if x := plan.Extended; x != nil && e.Number == 5 {
			fmt.Fprintf(&script, "start=%d, size=%d, type=f\n", x.Start, x.Size)
		}
		fields := []string{fmt.Sprintf("start=%d, size=%d", e.Start, e.Size), "type=" + partType(l.Label, p.Type)}
		if l.Label == "mbr" && p.Boot() {
			fields = append(fields, "bootable")
		}
		if l.Label == "gpt" && p.Name != "" {
			fields = append(fields, "name="+strconv.Quote(p.Name))
		}
		script.WriteString(strings.Join(fields, ", ") + "\n")
	}
	cmd := exec.Command("sfdisk", "--quiet", "--wipe", "always", dev)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %v: %s\nscript:\n%s", err, out, script.String())
	}
	return nil
}

// partType maps DIB's partition types (sgdisk codes such as EF00 for GPT,
// MBR ids such as 0x83) to what sfdisk takes.
func partType(label, t string) string {
	t = strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X"))
	if label == "mbr" {
		if t == "" {
			return "83"
		}
		return t
	}
	gpt := map[string]string{
		"EF00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI system
		"EF02": "21686148-6449-6E6F-744E-656564454649", // BIOS boot
		"8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
		"8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", // Linux swap
		"8E00": "E6D6D379-F507-44C2-A23C-238F2A3DF928", // Linux LVM
		"4100": "9E1A2D38-C612-4316-AA26-8B49521E5A8B", // PowerPC PReP boot
	}
	if g, ok := gpt[t]; ok {
		return g
	}
	if t == "" {
		return gpt["8300"]
	}
	return t // a GUID already
}

// mkfsOptions are the build's own mkfs options, which DIB gives the root
// filesystem only: for ext4, an inode per 4 KiB and a large journal, room
// for the many files and resizes of a cloud image; then
// --max-online-resize and --mkfs-options.
func (b *build) mkfsOptions(fs *api.Filesystem, dev string) []string {
	if fs.MountPoint != "/" {
		return nil
	}
	var opts []string
	if fs.Type == "ext4" {
		opts = append(opts, "-i", "4096")
		// A 64 MiB journal needs a filesystem of some size: tiny test
		// images get mkfs's own choice, unless a size was asked for.
		if b.spec.JournalMiB > 0 || devSize(dev) >= 1<<30 {
			opts = append(opts, "-J", fmt.Sprintf("size=%d", journalMiB(b.spec)))
		}
	}
	if n := b.spec.MaxOnlineResize; n > 0 && strings.HasPrefix(fs.Type, "ext") {
		opts = append(opts, "-E", fmt.Sprintf("resize=%d", n))
	}
	return append(opts, strings.Fields(b.spec.MkfsOptions)...)
}

func mkfs(dev string, fs *api.Filesystem, label string, extra []string) error {
	var args []string
	switch fs.Type {
	case "ext2", "ext3", "ext4":
		args = []string{"mkfs." + fs.Type, "-F", "-q"}
		if label != "" {
			args = append(args, "-L", label)
		}
		if fs.UUID != "" {
			args = append(args, "-U", fs.UUID)
		}
	case "xfs":
		args = []string{"mkfs.xfs", "-f", "-q"}
		if label != "" {
			args = append(args, "-L", label)
		}
		if fs.UUID != "" {
			args = append(args, "-m", "uuid="+fs.UUID)
		}
	case "vfat":
		args = []string{"mkfs.vfat"}
		if label != "" {
			args = append(args, "-n", strings.ToUpper(label))
		}
	default:
		return fmt.Errorf("mkfs type %q is not supported (ext2, ext3, ext4, xfs, vfat)", fs.Type)
	}
	args = append(args, strings.Fields(fs.Options)...)
	args = append(args, extra...)
	return run(args[0], append(args[1:], dev)...)
}

// mountImage mounts the image's filesystems under the target, shallowest
// first.
func (b *build) mountImage(img *image) error {
	type mp struct {
		dev string
		fs  *api.Filesystem
	}
	var mps []mp
	for i, p := range b.spec.Layout.Partitions {
		if p.FS != nil && p.FS.MountPoint != "" {
			mps = append(mps, mp{img.parts[i], p.FS})
		}
	}
	sort.Slice(mps, func(i, j int) bool { return mps[i].fs.MountPoint < mps[j].fs.MountPoint })
	for _, m := range mps {
		dir := filepath.Join(b.target, m.fs.MountPoint)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.dev, dir, m.fs.Type, 0, ""); err != nil {
			return fmt.Errorf("mount %s (%s) at %s: %w", m.dev, m.fs.Type, m.fs.MountPoint, err)
		}
		img.mounts = append(img.mounts, dir)
	}
	return nil
}

// fstab appends the image's filesystems to the target's /etc/fstab,
// by label when they have one, else by UUID.
func (b *build) fstab(img *image) error {
	var lines []string
	for i, p := range b.spec.Layout.Partitions {
		fs := p.FS
		if fs == nil || fs.MountPoint == "" {
			continue
		}
		src := ""
		if l := b.label(fs); l != "" {
			if fs.Type == "vfat" {
				l = strings.ToUpper(l)
			}
			src = "LABEL=" + l
		} else {
			out, err := exec.Command("blkid", "-s", "UUID", "-o", "value", img.parts[i]).Output()
			if err != nil {
				return fmt.Errorf("blkid %s: %w", img.parts[i], err)
			}
			src = "UUID=" + strings.TrimSpace(string(out))
		}
		opts := fs.FstabOptions
		if opts == "" {
			opts = "defaults"
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s 0 %d", src, fs.MountPoint, fs.Type, opts, fs.FsckPassno))
	}
	path := filepath.Join(b.target, "etc", "fstab")
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	return err
}

// release trims and unmounts the image's filesystems and frees the loop
// device.
func (img *image) release() error {
	var firstErr error
	for i := len(img.mounts) - 1; i >= 0; i-- {
		exec.Command("fstrim", img.mounts[i]).Run()
		if err := unix.Unmount(img.mounts[i], 0); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("unmount %s: %w", img.mounts[i], err)
		}
	}
	img.mounts = nil
	if img.loop != "" {
		exec.Command("losetup", "-d", img.loop).Run()
		img.loop = ""
	}
	return firstErr
}

// devSize is a block device's size in bytes, or 0 if unknown.
func devSize(dev string) int64 {
	out, err := exec.Command("blockdev", "--getsize64", dev).Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return n
}

func waitFor(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// treeSize is what du counts for the tree (disk usage, not apparent
// size), as DIB sizes its images.
func treeSize(dir string) (int64, error) {
	out, err := exec.Command("du", "-x", "-s", "-B1", dir).Output()
	if err != nil {
		return 0, fmt.Errorf("du %s: %w", dir, err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0, fmt.Errorf("du %s: no output", dir)
	}
	return strconv.ParseInt(f[0], 10, 64)
}
