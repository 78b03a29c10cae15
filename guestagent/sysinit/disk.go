package sysinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FindDisk returns the block device whose virtio serial number is serial,
// waiting up to timeout for it to appear.
func FindDisk(serial string, timeout time.Duration) (string, error) {
	return findDisk("/sys/block", serial, timeout)
}

// findDisk is FindDisk, with the block devices listed in sysBlock.
func findDisk(sysBlock, serial string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		serials, _ := filepath.Glob(filepath.Join(sysBlock, "*", "serial"))
		for _, p := range serials {
			b, err := os.ReadFile(p)
			if err == nil && strings.TrimSpace(string(b)) == serial {
				return "/dev/" + filepath.Base(filepath.Dir(p)), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no disk with serial %q after %s", serial, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MountReadOnly mounts dev, a filesystem of type fstype, read-only at dir.
func MountReadOnly(dev, dir, fstype string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, dir, fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, fstype, dir, err)
	}
	return nil
}
