// Package rundir makes the per-run directory that holds a VM's sockets,
// console log and input disk, and sweeps the ones whose owner died.
//
// Each directory holds a lock file that its owner keeps locked while it
// lives. The kernel drops the lock when the owner dies, even by SIGKILL,
// so an unlocked directory is safe to remove.
package rundir

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gofrs/flock"
)

const (
	prefix   = "dibvm-run-"
	lockName = "owner.lock"
)

// Dir is a run directory owned by this process.
type Dir struct {
	Path string
	lock *flock.Flock
}

// Base is where run directories go: dir, the one the user chose
// ($DIBVM_RUNTIME_DIR, which host/cli reads), else the system temporary
// directory, else /tmp. Unix socket paths must stay short (104 bytes on
// macOS), and macOS's per-user $TMPDIR (/var/folders/xx/…/T/) is already
// half that: where the temporary directory is too long for the sockets,
// run directories go to /tmp, each one made private to its user. A dir
// too long is an error, not passed over.
func Base(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.TempDir(); fits(d) {
		return d
	}
	return "/tmp"
}

// fits says whether sockets in run directories under base stay within the
// host's limit.
func fits(base string) bool {
	// MkdirTemp adds up to 10 digits to the prefix.
	return len(filepath.Join(base, prefix+"1234567890", longestSocket)) <= maxSocketPath
}

// longestSocket is the longest name of a socket in a run directory; the
// longest path a socket can have is the host's (maxSocketPath).
const longestSocket = "egress.sock"

// New sweeps stale run directories under Base(dir) and makes a new one
// there.
func New(dir string) (*Dir, error) {
	if base := Base(dir); !fits(base) {
		n := len(filepath.Join(base, prefix+"1234567890", longestSocket))
		return nil, fmt.Errorf("the run directory would be in %s, too long a path for the VM's unix sockets (%d bytes, at most %d): set DIBVM_RUNTIME_DIR to a shorter directory", base, n, maxSocketPath)
	}
	Sweep(dir)
	p, err := os.MkdirTemp(Base(dir), prefix)
	if err != nil {
		return nil, err
	}
	l := flock.New(filepath.Join(p, lockName))
	if err := l.Lock(); err != nil {
		os.RemoveAll(p)
		return nil, err
	}
	return &Dir{Path: p, lock: l}, nil
}

// File returns the path of name inside the directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, name) }

// Remove deletes the directory and releases it.
func (d *Dir) Remove() error {
	err := os.RemoveAll(d.Path)
	d.lock.Unlock()
	return err
}

// Sweep removes run directories under Base(dir) whose owners are gone.
// It returns how many it removed.
func Sweep(dir string) int {
	dirs, _ := filepath.Glob(filepath.Join(Base(dir), prefix+"*"))
	n := 0
	for _, d := range dirs {
		// Only directories this package made carry the lock file; leave
		// anything else alone.
		if fi, err := os.Lstat(filepath.Join(d, lockName)); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		l := flock.New(filepath.Join(d, lockName))
		ok, err := l.TryLock()
		if err != nil || !ok {
			continue // in use, or not ours to judge
		}
		if os.RemoveAll(d) == nil {
			n++
		}
		l.Unlock()
	}
	return n
}
