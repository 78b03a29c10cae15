// Package chroot readies the target for hooks chrooted into it: the
// kernel's filesystems mounted in it, the helper's resolver swapped in,
// the hooks bound read-only at /tmp/in_target.d, as DIB does.
package chroot

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// InTarget is where, inside the target, chrooted hooks find the hooks
// tree: DIB's path, which hooks rely on.
const InTarget = "/tmp/in_target.d"

// Target is the tree hooks are chrooted into, and what is mounted in it.
type Target struct {
	Root    string   // the target's directory outside the chroot
	mounted []string // inside Root, to undo in reverse
	// Mount and Unmount are the mount(2) and umount2(2) calls; tests
	// stand in for them.
	Mount   func(source, target, fstype string, flags uintptr, data string) error
	Unmount func(target string, flags int) error
	// Resolver is the helper's own resolv.conf, given to the target.
	Resolver string
}

// New is the target at root, mounted with the real system calls.
func New(root string) *Target {
	return &Target{Root: root, Mount: unix.Mount, Unmount: unix.Unmount, Resolver: "/etc/resolv.conf"}
}

// mount is one of the filesystems chrooted hooks expect.
type mount struct {
	src, dst, fstype string
	flags            uintptr
}

// kernelMounts are what chrooted hooks expect, in the order mounted.
var kernelMounts = []mount{
	{"proc", "proc", "proc", 0},
	{"/dev", "dev", "", unix.MS_BIND},
	{"/dev/pts", "dev/pts", "", unix.MS_BIND}, // the helper's own, so ttys resolve
	{"sysfs", "sys", "sysfs", unix.MS_RDONLY},
}

// MountAll mounts what chrooted hooks expect and swaps in a working
// resolv.conf.
func (t *Target) MountAll() error {
	for _, m := range kernelMounts {
		dst := filepath.Join(t.Root, m.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := t.Mount(m.src, dst, m.fstype, m.flags, ""); err != nil {
			return fmt.Errorf("mount %s in the target: %w", m.dst, err)
		}
		t.mounted = append(t.mounted, dst)
	}
	return t.swapResolvConf()
}

// UnmountAll undoes MountAll's mounts, the last first, detaching each
// from whatever still uses it.
func (t *Target) UnmountAll() {
	for i := len(t.mounted) - 1; i >= 0; i-- {
		t.Unmount(t.mounted[i], unix.MNT_DETACH)
	}
	t.mounted = nil
}

// BindHooks makes the hooks at dir visible read-only at InTarget inside
// the target, as DIB's run_d_in_target does, and returns how to undo it.
func (t *Target) BindHooks(dir string) (undo func(), err error) {
	inTarget := filepath.Join(t.Root, InTarget)
	if err := os.MkdirAll(inTarget, 0o755); err != nil {
		return nil, err
	}
	if err := t.Mount(dir, inTarget, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind the hooks into the target: %w", err)
	}
	undo = func() { t.Unmount(inTarget, unix.MNT_DETACH) }
	if err := t.Mount("", inTarget, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		undo()
		return nil, fmt.Errorf("make the hooks read-only: %w", err)
	}
	return undo, nil
}

// RunPartsArgs is the command line, from chroot on, that runs the hooks
// of phase inside the target with the agent's dib-run-parts (runParts,
// its name in the hooks tree), with its flags.
func (t *Target) RunPartsArgs(runParts, phase string, flags []string) []string {
	args := append([]string{t.Root, filepath.Join(InTarget, runParts)}, flags...)
	return append(args, filepath.Join(InTarget, phase))
}
