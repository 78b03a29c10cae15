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

// point stops the build where its tree may be kept: at the end of a
// phase the host asked to keep, or after a hook of one with more to
// come. The host, which heard every hook start and end, says whether it
// keeps the tree here; no code the build ran decides that. To be kept,
// the scratch disk is brought to rest: everything written is flushed
// and the filesystem frozen, so that the disk holds a clean filesystem
// that a later build can mount; the host switches the disk to a new
// layer and says go on; the filesystem thaws.
func (b *build) point(phase, hook string) error {
	if !slices.Contains(b.spec.Checkpoints, phase) {
		return nil
	}
	name := api.CheckpointName(phase, hook)
	b.tell(api.Message{Point: &api.Point{Phase: phase, Hook: hook}})
	word, err := b.word(name)
	if err != nil || word == api.ReplyGo {
		return err
	}
	if word != api.ReplyKeep {
		return fmt.Errorf("at %s the host said %q", name, word)
	}
	cp := &api.Checkpoint{Phase: phase, Hook: hook, Suites: aptSuites(b.built)}
	thaw, err := freeze(root)
	if err != nil {
		// The host keeps nothing here, then; it waits for word of it.
		cp.Unfrozen = err.Error()
		b.tell(api.Message{Checkpoint: cp})
		_, err := b.word(name)
		return err
	}
	b.tell(api.Message{Checkpoint: cp})
	_, waitErr := b.word(name)
	if err := thaw(); err != nil {
		return fmt.Errorf("thaw %s after the checkpoint: %w", root, err)
	}
	return waitErr
}

// freeze flushes everything written and freezes the filesystem mounted
// at dir, and returns how to thaw it.
func freeze(dir string) (thaw func() error, err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	unix.Sync()
	if err := unix.IoctlSetInt(int(d.Fd()), fiFreeze, 0); err != nil {
		d.Close()
		return nil, fmt.Errorf("freeze %s: %w", dir, err)
	}
	return func() error {
		defer d.Close()
		return unix.IoctlSetInt(int(d.Fd()), fiThaw, 0)
	}, nil
}

// word reads the host's next word on the build's stdin.
func (b *build) word(at string) (string, error) {
	line, err := b.stdin.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("waiting for the host's word at %s: the host went away: %w", at, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// watcher hears of the hooks of phase: it tells the host of each, and
// stops after each but the last of a phase with checkpoints for the
// host's word (see point).
func (b *build) watcher(phase string) hookrunner.Watcher {
	return &hookWatch{b: b, phase: phase}
}

// hookWatch tells the host of each hook before it starts and once it has
// succeeded. The host holds the build to the hooks it merged, in order,
// each once, and keeps a tree only at a point it saw reached in order: a
// hook is root here, and may write to the control stream itself, but it
// runs only after the host heard it start, and from then on nothing can
// take the build back to a point before it.
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
	if !more {
		return nil // the end of the phase is a point of its own
	}
	return w.b.point(w.phase, script)
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
