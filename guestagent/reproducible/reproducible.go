// Package reproducible makes a finished tree the same whenever the
// build that made it was: it removes what tools leave that differs from
// one run to the next (logs, caches, random seeds, the machine's
// identity) and clamps every time in it to SOURCE_DATE_EPOCH, as
// reproducible-builds.org, mmdebstrap and debuerreotype do.
package reproducible

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// runToRun are the files, as globs under the root, that tools write
// with the time, the order of events or randomness in them, and that
// nothing needs: each goes. The package managers' logs are one run's
// story; ldconfig's aux-cache holds inode times; apt's binary caches
// are rebuilt on use; a random seed must never be shared.
var runToRun = []string{
	"var/log/dpkg.log", "var/log/alternatives.log", "var/log/bootstrap.log",
	"var/log/apt/history.log", "var/log/apt/term.log", "var/log/apt/eipp.log.xz",
	"var/log/dnf.log", "var/log/dnf.librepo.log", "var/log/dnf.rpm.log", "var/log/hawkey.log",
	"var/log/zypper.log", "var/log/yum.log",
	"var/cache/ldconfig/aux-cache",
	"var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin",
	"var/cache/debconf/*-old", "var/lib/dpkg/*-old",
	"var/cache/man/index.db", "var/cache/man/*/index.db",
	"var/cache/fontconfig/*",
	"var/lib/systemd/random-seed", "var/lib/systemd/credential.secret",
	"var/lib/dbus/machine-id",
}

// Identities a machine takes at random when a package is installed, and
// that the package leaves to the first boot when a file says so before:
// preset before any package is, so that nothing (an initramfs) copies a
// random one. Debian's open-iscsi writes an initiator name unless the
// file is there, and its initramfs hook copies the file; with
// GenerateName=yes its startup makes a name at the first boot, as for
// any image that is copied.
var identities = []struct {
	path, content, user string // user: the program that reads it
}{
	{"etc/iscsi/initiatorname.iscsi", "GenerateName=yes\n", "usr/sbin/iscsi-iname"},
}

// Preset writes each identity file that is not there yet, before the
// packages are installed.
func Preset(root string) error {
	tree, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer tree.Close()
	for _, id := range identities {
		if _, err := tree.Lstat(id.path); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := tree.MkdirAll(filepath.Dir(id.path), 0o755); err != nil {
			return err
		}
		if err := tree.WriteFile(id.path, []byte(id.content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// unpreset removes what Preset wrote where nothing installed reads it.
func unpreset(tree *os.Root) error {
	for _, id := range identities {
		if b, err := tree.ReadFile(id.path); err != nil || string(b) != id.content {
			continue
		}
		if _, err := tree.Lstat(id.user); err == nil {
			continue
		}
		if err := tree.Remove(id.path); err != nil {
			return err
		}
		tree.Remove(filepath.Dir(id.path)) // if nothing else is there
	}
	return nil
}

// Tidy removes the run-to-run files under root, empties /etc/machine-id
// (systemd makes one at first boot, as for any image that is copied)
// and clamps every time under root to epoch. It returns what it removed,
// for the build's log.
func Tidy(root string, epoch time.Time) ([]string, error) {
	// The tree is the hooks' work: what is removed is resolved in it,
	// never through a link out of it.
	tree, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer tree.Close()
	var removed []string
	for _, g := range runToRun {
		matches, err := fs.Glob(tree.FS(), g)
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			info, err := tree.Lstat(m)
			if err != nil || info.Mode()&fs.ModeSymlink != 0 {
				continue // a link (dbus's to /etc/machine-id) is the same each time
			}
			if err := tree.RemoveAll(m); err != nil {
				return nil, err
			}
			removed = append(removed, "/"+m)
		}
	}
	if err := emptyMachineID(tree, "etc/machine-id"); err != nil {
		return nil, err
	}
	if err := unpreset(tree); err != nil {
		return nil, err
	}
	return removed, Clamp(root, epoch)
}

// emptyMachineID truncates a regular /etc/machine-id; a link or none is
// left as it is.
func emptyMachineID(tree *os.Root, name string) error {
	info, err := tree.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !info.Mode().IsRegular()) {
		return nil
	}
	if err != nil {
		return err
	}
	f, err := tree.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// Clamp sets the times of everything under root, root too, to no later
// than epoch: a modification time after it becomes it, and the access
// time becomes the modification time. Links are set themselves, never
// followed.
func Clamp(root string, epoch time.Time) error {
	limit := epoch.UnixNano()
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		mtime := min(st.Mtim.Nano(), limit)
		ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("clamp the times of %s: %w", path, err)
		}
		return nil
	})
}
