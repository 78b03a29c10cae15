package diskimage

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// mkfs makes the filesystem fs on dev.
func (m *Maker) mkfs(dev string, fs *api.Filesystem) error {
	args, err := m.mkfsCommand(dev, fs)
	if err != nil {
		return err
	}
	return toolrun.Run(m.Run, args[0], args[1:]...)
}

// mkfsArgs is the mkfs command line for fs, but for the device: fs's own
// label, UUID and options, then the build's extra ones.
func mkfsArgs(fs *api.Filesystem, label string, extra []string) ([]string, error) {
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
		if volumeID.MatchString(fs.UUID) {
			args = append(args, "-i", strings.ReplaceAll(fs.UUID, "-", ""))
		}
	default:
		return nil, fmt.Errorf("mkfs type %q is not supported (ext2, ext3, ext4, xfs, vfat)", fs.Type)
	}
	args = append(args, strings.Fields(fs.Options)...)
	return append(args, extra...), nil
}

// mkfsOptions are the build's own mkfs options, which DIB gives the root
// filesystem only: for ext4, an inode per 4 KiB and a large journal, room
// for the many files and resizes of a cloud image; then
// --max-online-resize and --mkfs-options.
func (m *Maker) mkfsOptions(fs *api.Filesystem, dev string) []string {
	if fs.MountPoint != "/" {
		return nil
	}
	var opts []string
	if fs.Type == "ext4" {
		opts = append(opts, "-i", "4096")
		// A 64 MiB journal needs a filesystem of some size: tiny test
		// images get mkfs's own choice, unless a size was asked for.
		if m.Spec.JournalMiB > 0 || m.devSize(dev) >= 1<<30 {
			opts = append(opts, "-J", fmt.Sprintf("size=%d", journalMiB(m.Spec)))
		}
	}
	if n := m.Spec.MaxOnlineResize; n > 0 && strings.HasPrefix(fs.Type, "ext") {
		opts = append(opts, "-E", fmt.Sprintf("resize=%d", n))
	}
	return append(opts, strings.Fields(m.Spec.MkfsOptions)...)
}

// devSize is a block device's size in bytes, or 0 if unknown.
func (m *Maker) devSize(dev string) int64 {
	out, err := m.Run.Output("blockdev", "--getsize64", dev)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return n
}
