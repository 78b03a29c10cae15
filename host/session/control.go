package session

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/breakpoint"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/outputs"
	"github.com/dibvm/dibvm/host/termsafe"
)

// control reads the build's control messages (see api.Message) and
// checks each one as hostile: whatever runs in the guest is root there
// and can forge them. A message that breaks the protocol, or asks for
// something the user did not ask for, stops the build.
type control struct {
	breaks   breakpoint.Set
	types    []string
	image    string // the image's name, which emitted files start with
	diskSize int64  // the output disk's size
	// command says the build runs the user's command (customize's
	// -- COMMAND), its step api.StepCommand; no other build has it.
	command bool

	// seq is the host's account of the hooks the build runs: it holds
	// the build to the hooks the host merged, in order, each once.
	seq *sequence
	// wants says whether the host keeps the tree at a point the build
	// reached in order, the hook before it having run for took by the
	// host's clock; nil keeps none. onCheckpoint keeps the tree once the
	// build has brought it to rest there.
	wants        func(point string, took time.Duration) bool
	onCheckpoint func(*api.Checkpoint)
	// onBreak opens the shell of an allowed breakpoint and returns when
	// the user leaves it.
	onBreak func(api.Break)
	// reply gives the build the host's word (api.ReplyKeep, ReplyGo) on
	// its stdin.
	reply func(word string)
	// onHook and onStep hear of each hook and step as it starts and
	// ends, once checked; either may be nil.
	onHook func(*api.Hook)
	onStep func(*api.Step)
	// stop stops the VM after a violation, so that the build ends.
	stop func()
	// now is the host's clock.
	now func() time.Time
	// onOffList hears, once, why the build left the hooks the host
	// merged: from then on it keeps nothing.
	onOffList    func(why string)
	offListNoted bool

	taken    map[string]bool // breakpoints already given
	awaiting *api.Point      // where the host said keep, until the build is at rest there
	steps    int             // step and hook messages so far

	// What the build said at its end; at most one is set.
	result   *api.Result
	failure  *api.Failure
	buildErr string
	// err is the violation that stopped the build: a *ViolationError.
	err error
}

// read handles messages from r until it ends. After a violation it
// drains r, so that the session's copy into it never blocks.
func (c *control) read(r io.Reader) {
	for {
		m, err := api.ReadMessage(r)
		if err == io.EOF {
			return
		}
		if err == nil {
			err = c.handle(m)
		}
		if err != nil {
			var pe *api.ProtocolError
			if errors.As(err, &pe) {
				err = &ViolationError{Reason: pe.Error()}
			}
			c.err = err
			c.stop()
			io.Copy(io.Discard, r)
			return
		}
	}
}

func (c *control) handle(m api.Message) error {
	if c.result != nil || c.failure != nil || c.buildErr != "" {
		return violation("a %s message came after the build's final message", m.Kind())
	}
	defer c.noteOffList()
	if c.awaiting != nil && m.Checkpoint == nil {
		return violation("a %s message came while the host waited for the tree to come to rest at %q", m.Kind(), api.CheckpointName(c.awaiting.Phase, c.awaiting.Hook))
	}
	switch {
	case m.Break != nil:
		if err := c.checkBreak(*m.Break); err != nil {
			return err
		}
		c.onBreak(*m.Break)
		c.answer(api.ReplyGo)
	case m.Hook != nil:
		if err := c.checkHook(m.Hook); err != nil {
			return err
		}
		if c.onHook != nil {
			c.onHook(m.Hook)
		}
	case m.Step != nil:
		if err := c.checkStep(m.Step); err != nil {
			return err
		}
		if c.onStep != nil {
			c.onStep(m.Step)
		}
	case m.Point != nil:
		if err := c.count(); err != nil {
			return err
		}
		took, err := c.sequence().reach(*m.Point)
		if err != nil {
			return err
		}
		name := api.CheckpointName(m.Point.Phase, m.Point.Hook)
		if c.seq.offList == "" && c.wants != nil && c.wants(name, took) {
			c.awaiting = m.Point
			c.answer(api.ReplyKeep)
		} else {
			c.answer(api.ReplyGo)
		}
	case m.Checkpoint != nil:
		if err := c.count(); err != nil {
			return err
		}
		if err := c.checkCheckpoint(m.Checkpoint); err != nil {
			return err
		}
		c.awaiting = nil
		c.onCheckpoint(m.Checkpoint)
		c.answer(api.ReplyGo)
	case m.Result != nil:
		if err := checkResult(*m.Result, c.types, c.image, c.diskSize); err != nil {
			return err
		}
		c.result = m.Result
	case m.Failure != nil:
		if err := checkFailure(m.Failure); err != nil {
			return err
		}
		c.failure = m.Failure
	default:
		if len(m.Error) > maxErrorText {
			return violation("its error message is %d bytes, more than %d", len(m.Error), maxErrorText)
		}
		c.buildErr = m.Error
	}
	return nil
}

// noteOffList tells onOffList, once, that the build left the hooks the
// host merged.
func (c *control) noteOffList() {
	if c.seq != nil && c.seq.offList != "" && !c.offListNoted {
		c.offListNoted = true
		if c.onOffList != nil {
			c.onOffList(c.seq.offList)
		}
	}
}

func (c *control) answer(word string) {
	if c.reply != nil {
		c.reply(word)
	}
}

func (c *control) sequence() *sequence {
	if c.seq == nil {
		c.seq = newSequence(nil, "")
	}
	return c.seq
}

func (c *control) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// checkBreak allows a shell only where break= asked for one, and once.
func (c *control) checkBreak(b api.Break) error {
	if !c.breaks[b.Point] {
		return violation("the helper VM asked for a shell at %q, where break= did not ask to stop; no shell was opened", b.Point)
	}
	if c.taken[b.Point] {
		return violation("the helper VM asked a second time for the shell at %q; no shell was opened", b.Point)
	}
	if chroot, ok := breakpoint.InChroot(b.Point); ok && chroot != b.Chroot {
		return violation("the helper VM placed the shell at %q in the wrong place", b.Point)
	}
	if c.taken == nil {
		c.taken = map[string]bool{}
	}
	c.taken[b.Point] = true
	return nil
}

// maxSteps bounds the step and hook messages of a build: each becomes
// an event the host shows and records.
const maxSteps = 20000

// checkHook holds the build to the hooks the host merged (see sequence).
func (c *control) checkHook(h *api.Hook) error {
	if err := c.count(); err != nil {
		return err
	}
	if !slices.Contains(elements.Phases, h.Phase) {
		return violation("the helper VM said it runs a hook of %q, which is not a phase", h.Phase)
	}
	if !hookName.MatchString(h.Script) {
		return violation("the helper VM said it runs %q, which is not a hook's name", h.Script)
	}
	if h.Done {
		return c.sequence().finish(h.Phase, h.Script, c.clock())
	}
	return c.sequence().start(h.Phase, h.Script, c.clock())
}

// checkStep allows the build's steps: its phases and its own.
func (c *control) checkStep(s *api.Step) error {
	if err := c.count(); err != nil {
		return err
	}
	own := []string{api.StepImage, api.StepOutputs}
	if c.command {
		own = append(own, api.StepCommand)
	}
	if !slices.Contains(elements.Phases, s.Name) && !slices.Contains(own, s.Name) {
		return violation("the helper VM said it runs step %q, which is not one of the build's", s.Name)
	}
	return nil
}

func (c *control) count() error {
	if c.steps++; c.steps > maxSteps {
		return violation("the helper VM sent more than %d step, hook and point messages", maxSteps)
	}
	return nil
}

// checkCheckpoint allows a checkpoint only at the point where the host
// said keep, with bounded and printable news of the tree's APT suites.
func (c *control) checkCheckpoint(cp *api.Checkpoint) error {
	if c.awaiting == nil || *c.awaiting != (api.Point{Phase: cp.Phase, Hook: cp.Hook}) {
		return violation("the helper VM said the tree is at rest at %q, where the host did not ask to keep it", termsafe.String(api.CheckpointName(cp.Phase, cp.Hook)))
	}
	if err := checkpoint.CheckSuites(cp.Suites); err != nil {
		return violation("%s", termsafe.String(err.Error()))
	}
	if len(cp.Unfrozen) > maxErrorText {
		return violation("a checkpoint's reason is %d bytes, more than %d", len(cp.Unfrozen), maxErrorText)
	}
	return nil
}

// Bounds on a failure report: its tail is the failed hook's last lines.
const (
	maxTailLines = 100
	maxErrorText = 16 << 10
)

// hookName is a name dib-run-parts runs; the -p step reports its own.
var hookName = regexp.MustCompile(`^[0-9A-Za-z_-]+$`)

func checkFailure(f *api.Failure) error {
	if !slices.Contains(elements.Phases, f.Phase) {
		return violation("a hook failure names phase %q, which is not a phase", f.Phase)
	}
	if !hookName.MatchString(f.Script) && f.Script != api.ExtraPackagesScript {
		return violation("a hook failure names script %q, which is not a hook's name", f.Script)
	}
	if f.Status < -1 || f.Status > 255 {
		return violation("a hook failure has exit status %d", f.Status)
	}
	if len(f.Signal) > 32 {
		return violation("a hook failure names a %d-byte signal", len(f.Signal))
	}
	if len(f.Tail) > maxTailLines {
		return violation("a hook failure brings %d lines of output, more than %d", len(f.Tail), maxTailLines)
	}
	return nil
}

// checkResult checks that every output the guest reports lies on the
// output disk, that none overlaps another, and that there is exactly
// what was asked for, and the files hooks wrote beside the image, of
// names and sizes the host takes.
func checkResult(r api.Result, types []string, image string, diskSize int64) error {
	sections := []section{
		{"disk image", 0, r.ImageSize, diskformat.WantsDisk(types), true},
		{"tar of the tree", r.TarOffset, r.TarSize, api.TreeArchive(types), true},
		{"squashfs", r.SquashfsOffset, r.SquashfsSize, slices.Contains(types, api.TypeSquashfs), true},
		{"manifests", r.ManifestsOffset, r.ManifestsSize, true, false},
		{"package list", r.PackagesOffset, r.PackagesSize, true, false},
	}
	if err := checkEmitted(r.Emitted, image); err != nil {
		return err
	}
	for _, f := range r.Emitted {
		sections = append(sections, section{fmt.Sprintf("file %q beside the image", f.Name), f.Offset, f.Size, true, false})
	}
	for i, s := range sections {
		switch {
		case s.offset < 0 || s.size < 0:
			return violation("its result puts the %s at offset %d, length %d", s.name, s.offset, s.size)
		case s.size == 0 && s.wanted && s.needsBytes:
			return violation("its result has no %s, which was asked for", s.name)
		case s.size > 0 && !s.wanted:
			return violation("its result has a %s, which was not asked for", s.name)
		case s.offset > diskSize || s.size > diskSize-s.offset:
			return violation("its result puts the %s at bytes %d+%d, beyond the %d-byte output disk", s.name, s.offset, s.size, diskSize)
		}
		for _, o := range sections[:i] {
			if s.size > 0 && o.size > 0 && s.offset < o.offset+o.size && o.offset < s.offset+s.size {
				return violation("its result puts the %s over the %s", s.name, o.name)
			}
		}
	}
	if r.ManifestsSize > outputs.MaxManifests {
		return violation("its manifests are %d bytes, more than %d", r.ManifestsSize, outputs.MaxManifests)
	}
	if r.PackagesSize > api.MaxPackageList {
		return violation("its package list is %d bytes, more than %d", r.PackagesSize, api.MaxPackageList)
	}
	return nil
}

// section is an output's place on the output disk: wanted if the
// build may have it, and then of some bytes if needsBytes.
type section struct {
	name               string
	offset, size       int64
	wanted, needsBytes bool
}

// checkEmitted holds the files hooks wrote beside the image to what the
// guest holds them to (see guestagent/emitted): names, number, sizes.
func checkEmitted(files []api.EmittedFile, image string) error {
	if len(files) > api.MaxEmittedFiles {
		return violation("its result has %d files beside the image, more than %d", len(files), api.MaxEmittedFiles)
	}
	var total int64
	seen := map[string]bool{}
	for _, f := range files {
		if err := api.CheckEmittedName(image, f.Name); err != nil {
			return violation("its result has a file beside the image that the host does not take: %v", err)
		}
		if seen[f.Name] {
			return violation("its result has the file %q beside the image twice", f.Name)
		}
		seen[f.Name] = true
		if !slices.Contains(elements.Phases, f.Phase) {
			return violation("its result says %q was written in %q, which is no phase", f.Name, f.Phase)
		}
		if f.Size > api.MaxEmittedFile {
			return violation("its result has %q beside the image, %d bytes, more than %d", f.Name, f.Size, api.MaxEmittedFile)
		}
		if total += max(f.Size, 0); total > api.MaxEmittedTotal {
			return violation("its result has files beside the image of more than %d bytes", api.MaxEmittedTotal)
		}
	}
	return nil
}

// ViolationError is a control message the host refused: the build was
// stopped because of it.
type ViolationError struct{ Reason string }

func (e *ViolationError) Error() string {
	return "the build was stopped: " + e.Reason + ". The guest runs the elements' hooks as root: a hook may have written to the build's control stream"
}

func violation(format string, args ...any) error {
	return &ViolationError{Reason: fmt.Sprintf(format, args...)}
}
