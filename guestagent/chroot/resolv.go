package chroot

import (
	"os"
	"path/filepath"
)

// While the target is mounted, its own resolv.conf (a file or a link)
// waits at resolvSaved, or resolvAbsent says it had none.
const (
	resolvSaved  = "etc/.resolv.conf.dibvm-orig"
	resolvAbsent = "etc/.resolv.conf.dibvm-absent"
)

// swapResolvConf gives the target the helper's resolver during the build,
// keeping whatever the target had to put back. A tree kept after a phase
// has been swapped already: only the helper's resolver is written anew.
func (t *Target) swapResolvConf() error {
	conf := filepath.Join(t.Root, "etc", "resolv.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	if !exists(filepath.Join(t.Root, resolvSaved)) && !exists(filepath.Join(t.Root, resolvAbsent)) {
		if exists(conf) {
			if err := os.Rename(conf, filepath.Join(t.Root, resolvSaved)); err != nil {
				return err
			}
		} else if err := os.WriteFile(filepath.Join(t.Root, resolvAbsent), nil, 0o600); err != nil {
			return err
		}
	}
	os.Remove(conf)
	data, _ := os.ReadFile(t.Resolver)
	return os.WriteFile(conf, data, 0o644)
}

// Finish restores the target's own resolv.conf and empties its /tmp, as
// DIB does before the tree becomes an image.
func (t *Target) Finish() error {
	if err := t.RestoreResolvConf(); err != nil {
		return err
	}
	tmp := filepath.Join(t.Root, "tmp")
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// RestoreResolvConf puts back the target's own resolv.conf, or none if
// it had none.
func (t *Target) RestoreResolvConf() error {
	conf := filepath.Join(t.Root, "etc", "resolv.conf")
	os.Remove(conf)
	os.Remove(filepath.Join(t.Root, resolvAbsent))
	if exists(filepath.Join(t.Root, resolvSaved)) {
		return os.Rename(filepath.Join(t.Root, resolvSaved), conf)
	}
	return nil
}
