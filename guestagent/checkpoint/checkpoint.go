// Package checkpoint stops the build where the host may keep its tree:
// the hooks told to the host, the point where it says keep or go, the
// scratch disk frozen while it keeps it.
package checkpoint

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/control"
	"github.com/dibvm/dibvm/guestagent/hookrunner"
)

// Points are where a build may be kept.
type Points struct {
	Phases []string      // the phases the host asked to keep (api.Spec.Checkpoints)
	Host   *control.Host // the host, which says keep or go
	Disk   string        // where the scratch disk is mounted, to freeze
	Tree   string        // the tree, whose APT suites a checkpoint reports
	// Freeze brings the filesystem at a directory to rest and returns how
	// to thaw it; nil is the real freeze.
	Freeze func(dir string) (thaw func() error, err error)
}

// Point stops the build where its tree may be kept: at the end of a
// phase the host asked to keep, or after a hook of one with more to
// come. The host, which heard every hook start and end, says whether it
// keeps the tree here; no code the build ran decides that. To be kept,
// the scratch disk is brought to rest: everything written is flushed
// and the filesystem frozen, so that the disk holds a clean filesystem
// that a later build can mount; the host switches the disk to a new
// layer and says go on; the filesystem thaws.
func (p *Points) Point(phase, hook string) error {
	if !slices.Contains(p.Phases, phase) {
		return nil
	}
	name := api.CheckpointName(phase, hook)
	p.Host.Tell(api.Message{Point: &api.Point{Phase: phase, Hook: hook}})
	word, err := p.word(name)
	if err != nil || word == api.ReplyGo {
		return err
	}
	if word != api.ReplyKeep {
		return fmt.Errorf("at %s the host said %q", name, word)
	}
	cp := &api.Checkpoint{Phase: phase, Hook: hook, Suites: aptSuites(p.Tree)}
	freeze := p.Freeze
	if freeze == nil {
		freeze = Freeze
	}
	thaw, err := freeze(p.Disk)
	if err != nil {
		// The host keeps nothing here, then; it waits for word of it.
		cp.Unfrozen = err.Error()
		p.Host.Tell(api.Message{Checkpoint: cp})
		_, err := p.word(name)
		return err
	}
	p.Host.Tell(api.Message{Checkpoint: cp})
	_, waitErr := p.word(name)
	if err := thaw(); err != nil {
		return fmt.Errorf("thaw %s after the checkpoint: %w", p.Disk, err)
	}
	return waitErr
}

// word reads the host's next word.
func (p *Points) word(at string) (string, error) {
	line, err := p.Host.ReadLine()
	if err != nil {
		return "", fmt.Errorf("waiting for the host's word at %s: the host went away: %w", at, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// The freeze ioctls of linux/fs.h, _IOWR('X', 119, int) and
// _IOWR('X', 120, int), the same on amd64 and arm64; x/sys/unix has no
// names for them.
const (
	fiFreeze = 0xc0045877
	fiThaw   = 0xc0045878
)

// Freeze flushes everything written and freezes the filesystem mounted
// at dir, and returns how to thaw it.
func Freeze(dir string) (thaw func() error, err error) {
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

// Watcher hears of the hooks of phase: it tells the host of each, and
// stops after each but the last of a phase with checkpoints for the
// host's word (see Point).
func (p *Points) Watcher(phase string) hookrunner.Watcher {
	return &hookWatch{p: p, phase: phase}
}

// hookWatch tells the host of each hook before it starts and once it has
// succeeded. The host holds the build to the hooks it merged, in order,
// each once, and keeps a tree only at a point it saw reached in order: a
// hook is root here, and may write to the control stream itself, but it
// runs only after the host heard it start, and from then on nothing can
// take the build back to a point before it.
type hookWatch struct {
	p     *Points
	phase string
}

func (w *hookWatch) Starting(script string) error {
	// Written before the hook starts: nothing it does can come before.
	return w.p.Host.Send(api.Message{Hook: &api.Hook{Phase: w.phase, Script: script}})
}

func (w *hookWatch) Finished(script string, took time.Duration, more bool) error {
	if err := w.p.Host.Send(api.Message{Hook: &api.Hook{Phase: w.phase, Script: script, Done: true}}); err != nil {
		return err
	}
	if !more {
		return nil // the end of the phase is a point of its own
	}
	return w.p.Point(w.phase, script)
}
