package dibbuild

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/hookrunner"
)

// The freeze ioctls of linux/fs.h, _IOWR('X', 119, int) and
// _IOWR('X', 120, int), the same on amd64 and arm64; x/sys/unix has no
// names for them.
const (
	fiFreeze = 0xc0045877
	fiThaw   = 0xc0045878
)

// checkpoint, after a phase the host asked to keep, or after a slow hook
// of it, brings the scratch disk to rest and hands it over: everything
// written is flushed and the filesystem frozen, so that the disk holds a
// clean filesystem that a later build can mount; the host switches the
// disk to a new layer and says go on; the filesystem thaws.
func (b *build) checkpoint(phase, hook string) error {
	if !slices.Contains(b.spec.Checkpoints, phase) {
		return nil
	}
	name := api.CheckpointName(phase, hook)
	suites := aptSuites(b.built)
	dir, err := os.Open(root)
	if err != nil {
		return err
	}
	defer dir.Close()
	unix.Sync()
	if err := unix.IoctlSetInt(int(dir.Fd()), fiFreeze, 0); err != nil {
		// No checkpoint, then: the host keeps only what it is told of.
		fmt.Fprintf(b.out, "dib-build: no checkpoint after %s: freeze %s: %v\n", name, root, err)
		return nil
	}
	b.tell(api.Message{Checkpoint: &api.Checkpoint{Phase: phase, Hook: hook, Suites: suites}})
	_, waitErr := b.stdin.ReadString('\n')
	if err := unix.IoctlSetInt(int(dir.Fd()), fiThaw, 0); err != nil {
		return fmt.Errorf("thaw %s after the checkpoint: %w", root, err)
	}
	if waitErr != nil {
		return fmt.Errorf("waiting for the checkpoint after %s: the host went away: %w", name, waitErr)
	}
	return nil
}

// watcher hears of the hooks of phase: it tells the host of each, and
// keeps the tree after each slow one where the host asked for
// checkpoints inside the phase.
func (b *build) watcher(phase string) hookrunner.Watcher {
	return &hookWatch{b: b, phase: phase}
}

// hookWatch tells the host of each hook before it starts and once it has
// succeeded: the host shows the build's progress by them, and refuses a
// checkpoint said to be after a hook when a later one has run (a hook is
// root here, and could forge one). It keeps the tree after each slow
// hook of a phase with checkpoints.
type hookWatch struct {
	b     *build
	phase string
}

func (w *hookWatch) Starting(script string) error {
	// Written before the hook starts: nothing it does can come before.
	return api.WriteMessage(w.b.ctl, api.Message{Hook: &api.Hook{Phase: w.phase, Script: script}})
}

func (w *hookWatch) Finished(script string, took time.Duration, more bool) error {
	if err := api.WriteMessage(w.b.ctl, api.Message{Hook: &api.Hook{Phase: w.phase, Script: script, Done: true}}); err != nil {
		return err
	}
	slow := w.b.spec.SlowHookSeconds
	if slow <= 0 || !more || took < time.Duration(slow)*time.Second || !slices.Contains(w.b.spec.Checkpoints, w.phase) {
		return nil
	}
	return w.b.checkpoint(w.phase, script)
}

// Bounds on what a checkpoint reports of the tree's APT suites.
const (
	maxSuites    = 32
	maxSuiteName = 200
)

// aptSuites reads the Date of each Release file among the tree's APT
// lists: when the mirror made the package lists the tree was built from.
func aptSuites(tree string) []api.Suite {
	files, _ := filepath.Glob(filepath.Join(tree, "var/lib/apt/lists/*Release"))
	var out []api.Suite
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), "_InRelease"), "_Release")
		if name == filepath.Base(f) || len(out) == maxSuites {
			continue
		}
		date := releaseDate(f)
		if date == "" {
			continue
		}
		out = append(out, api.Suite{Name: shorten(strings.ReplaceAll(name, "_", "/"), maxSuiteName), Date: shorten(date, 64)})
	}
	return out
}

// releaseDate is the Date field of a Release file, signed or not.
func releaseDate(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for i := 0; s.Scan() && i < 64; i++ {
		if v, ok := strings.CutPrefix(s.Text(), "Date:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
