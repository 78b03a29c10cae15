package dibbuild

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mountTarget mounts what chrooted hooks expect and swaps in a working
// resolv.conf.
func (b *build) mountTarget() error {
	for _, m := range []struct {
		src, dst, fstype string
		flags            uintptr
	}{
		{"proc", "proc", "proc", 0},
		{"/dev", "dev", "", unix.MS_BIND},
		{"/dev/pts", "dev/pts", "", unix.MS_BIND}, // the helper's own, so ttys resolve
		{"sysfs", "sys", "sysfs", unix.MS_RDONLY},
	} {
		dst := filepath.Join(b.target, m.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, dst, m.fstype, m.flags, ""); err != nil {
			return fmt.Errorf("mount %s in the target: %w", m.dst, err)
		}
		b.mounts = append(b.mounts, dst)
	}
	return b.swapResolvConf()
}

func (b *build) unmountTarget() {
	for i := len(b.mounts) - 1; i >= 0; i-- {
		unix.Unmount(b.mounts[i], unix.MNT_DETACH)
	}
	b.mounts = nil
}

// While the target is mounted, its own resolv.conf (a file or a link)
// waits at resolvSaved, or resolvAbsent says it had none.
const (
	resolvSaved  = "etc/.resolv.conf.dibvm-orig"
	resolvAbsent = "etc/.resolv.conf.dibvm-absent"
)

// swapResolvConf gives the target the helper's resolver during the build,
// keeping whatever the target had to put back. A tree kept after a phase
// has been swapped already: only the helper's resolver is written anew.
func (b *build) swapResolvConf() error {
	conf := filepath.Join(b.target, "etc", "resolv.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	if !exists(filepath.Join(b.target, resolvSaved)) && !exists(filepath.Join(b.target, resolvAbsent)) {
		if exists(conf) {
			if err := os.Rename(conf, filepath.Join(b.target, resolvSaved)); err != nil {
				return err
			}
		} else if err := os.WriteFile(filepath.Join(b.target, resolvAbsent), nil, 0o600); err != nil {
			return err
		}
	}
	os.Remove(conf)
	data, _ := os.ReadFile("/etc/resolv.conf")
	return os.WriteFile(conf, data, 0o644)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
