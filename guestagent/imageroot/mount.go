package imageroot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/sysinit"
)

// Mounted is a Layout mounted read-write under Dir.
type Mounted struct {
	Dir     string
	Layout  Layout
	mounted []string // in the order mounted
}

// Points are where the image's filesystems are mounted, the root first.
func (m *Mounted) Points() []string { return slices.Clone(m.mounted) }

// MountPoints are the image's mount points inside it, as DIB's
// DIB_MOUNTPOINTS lists a layout's: "/", then "/boot" and "/boot/efi"
// where the image has them.
func (l Layout) MountPoints() []string {
	mps := []string{"/"}
	if l.Boot != nil {
		mps = append(mps, "/boot")
	}
	if l.EFI != nil {
		mps = append(mps, "/boot/efi")
	}
	return mps
}

// Mount mounts l's root at dir, then its /boot and ESP inside it.
func Mount(l Layout, dir string) (*Mounted, error) {
	m := &Mounted{Dir: dir, Layout: l}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, at := range []struct {
		p    *Partition
		path string
	}{{l.Root, "/"}, {l.Boot, "/boot"}, {l.EFI, "/boot/efi"}} {
		if at.p == nil {
			continue
		}
		dst := filepath.Join(dir, at.path)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			m.Unmount()
			return nil, fmt.Errorf("mount %s at %s: %w", at.p, at.path, err)
		}
		if err := mountFS(at.p, dst); err != nil {
			m.Unmount()
			return nil, fmt.Errorf("mount %s at %s: %w", at.p, at.path, err)
		}
		m.mounted = append(m.mounted, dst)
	}
	return m, nil
}

// mountFS mounts p at dst with the options extract-image gives its type:
// XFS without its UUID check (a clone of an image shares its UUID), and
// btrfs at the subvolume Fedora's images keep their root in, when there
// is one.
func mountFS(p *Partition, dst string) error {
	switch p.FSType {
	case "xfs":
		return unix.Mount(p.Dev, dst, p.FSType, 0, "nouuid")
	case "btrfs":
		if unix.Mount(p.Dev, dst, p.FSType, 0, "subvol=root") == nil {
			return nil
		}
	}
	return unix.Mount(p.Dev, dst, p.FSType, 0, "")
}

// Unmount unmounts what Mount mounted, the last first, and flushes the
// disk: the host reads the image once the guest is done.
func (m *Mounted) Unmount() error {
	var errs []error
	for i := len(m.mounted) - 1; i >= 0; i-- {
		if err := unix.Unmount(m.mounted[i], 0); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.mounted[i], err))
		}
	}
	m.mounted = nil
	unix.Sync()
	return errors.Join(errs...)
}

// Open finds the filesystems of the disk with the given serial as
// extract-image would, mounts them at dir, and checks that the root is
// a Linux system's, which chrooted commands can run in. It says on out
// where each filesystem came from.
func Open(serial, dir string, out io.Writer) (*Mounted, error) {
	disk, err := sysinit.FindDisk(serial, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("find the image's disk: %w", err)
	}
	parts, err := Probe(disk)
	if err != nil {
		return nil, fmt.Errorf("read the image's partitions: %w", err)
	}
	l, err := Choose(parts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "dibvm: the image's root is %s%s\n", l.Root, l.extras())
	m, err := Mount(l, dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(filepath.Join(dir, "bin/sh")); err != nil {
		m.Unmount()
		return nil, fmt.Errorf("the image's root, %s, has no /bin/sh: is it the root of a Linux system?", l.Root)
	}
	return m, nil
}

// extras names the /boot and ESP partitions mounted in the root.
func (l Layout) extras() string {
	s := ""
	if l.Boot != nil {
		s += ", /boot " + l.Boot.String()
	}
	if l.EFI != nil {
		s += ", /boot/efi " + l.EFI.String()
	}
	return s
}
