package imageroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Mounted is a Layout mounted read-write under Dir.
type Mounted struct {
	Dir     string
	mounted []string // in the order mounted
}

// Mount mounts l's root at dir, then its /boot and ESP inside it.
func Mount(l Layout, dir string) (*Mounted, error) {
	m := &Mounted{Dir: dir}
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
