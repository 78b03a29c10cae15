package session

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
)

// sequence is the host's own account of where a build is: the hooks it
// merged, phase by phase in the order DIB runs them, and which of them
// the build said it started and finished. The build may start a hook of
// that list only after those before it, each once, never while another
// runs, and never go back a phase; it may stop at a point only right
// after the hook that point names, or once at the end of a phase. So
// when the build reaches a point where the tree can be kept, the host
// knows that no hook after it has started: a hook that is running can
// write control messages, but only after the host heard it start, and
// nothing it writes can take the account back to a point before it.
//
// A build may also run a hook the host did not merge, or pass over one
// it did: a hook can add to or take from the hooks tree (DIB's own
// install-types element links hooks into install.d from extra-data.d).
// That is no forgery, but the host can no longer say what a tree holds:
// from then on the build keeps nothing (offList says why).
type sequence struct {
	hooks map[string][]elements.MergedHook
	phase int  // index in elements.Phases of the phase being run; -1 before root.d
	next  int  // index in hooks of phase of the first hook not started
	ended bool // the build stopped at the end of phase

	running  string    // the hook started and not finished
	started  time.Time // when the host heard it start
	finished string    // the hook finished last in phase, until a point after it
	took     time.Duration

	offList string // why the build left the hooks the host merged, if it did
}

// wholePhases are the phases that run every hook of theirs in every
// build: those up to the last a tree is kept after. (block-device.d runs
// only for disk images.)
var wholePhases = elements.Phases[:slices.Index(elements.Phases, api.CheckpointPhases[len(api.CheckpointPhases)-1])+1]

// newSequence starts the account of a build of hooks, resumed at resume
// (a CheckpointName) or from the start.
func newSequence(hooks map[string][]elements.MergedHook, resume string) *sequence {
	s := &sequence{hooks: hooks, phase: -1}
	if resume != "" {
		phase, hook, _ := strings.Cut(resume, "/")
		s.phase = slices.Index(elements.Phases, phase)
		s.next, s.ended = len(hooks[phase]), true
		if hook != "" {
			s.next = slices.IndexFunc(hooks[phase], func(h elements.MergedHook) bool { return h.Name == hook }) + 1
			s.ended = false
		}
	}
	return s
}

// start records that the build starts hook script of phase, heard at now.
func (s *sequence) start(phase, script string, now time.Time) error {
	if s.running != "" {
		return violation("the helper VM said it starts %s/%s while %s still runs", phase, script, s.running)
	}
	if err := s.enter(phase, "starts hook "+script+" of it"); err != nil {
		return err
	}
	list := s.hooks[phase]
	i := slices.IndexFunc(list, func(h elements.MergedHook) bool { return h.Name == script })
	switch {
	case i < 0:
		s.leave("it runs %s/%s, which is no hook of the elements (a hook may have made it)", phase, script)
	case i < s.next || s.ended:
		return violation("the helper VM said it starts %s/%s, which it had started already", phase, script)
	default:
		if j := s.skipped(phase, s.next, i); j >= 0 {
			s.leave("it passed over %s/%s (a hook may have taken it away)", phase, list[j].Name)
		}
		s.next = i + 1
	}
	s.running, s.started, s.finished = script, now, ""
	return nil
}

// finish records that the running hook succeeded, heard at now.
func (s *sequence) finish(phase, script string, now time.Time) error {
	if s.running != script || elements.Phases[s.phase] != phase {
		return violation("the helper VM said %s/%s finished, which is not the hook running", phase, script)
	}
	s.running, s.finished, s.took = "", script, now.Sub(s.started)
	return nil
}

// reach checks that the build is at point p, where the tree may be
// kept: right after the hook of p's phase it finished last, with none
// running; or, once, at the end of p's phase. It returns how long the
// hook took by the host's clock.
func (s *sequence) reach(p api.Point) (time.Duration, error) {
	name := api.CheckpointName(p.Phase, p.Hook)
	if !slices.Contains(api.CheckpointPhases, p.Phase) {
		return 0, violation("the helper VM stopped at %q, which is no place to keep the tree", name)
	}
	if s.running != "" {
		return 0, violation("the helper VM stopped at %q while %s still runs", name, s.running)
	}
	if p.Hook != "" {
		if s.phase < 0 || elements.Phases[s.phase] != p.Phase || s.finished != p.Hook {
			return 0, violation("the helper VM stopped at %q, but the hook it finished last is not that one, or it stopped there already", name)
		}
		s.finished = ""
		return s.took, nil
	}
	if err := s.enter(p.Phase, "ended"); err != nil {
		return 0, err
	}
	if s.ended {
		return 0, violation("the helper VM stopped a second time at the end of %s", p.Phase)
	}
	if j := s.skipped(p.Phase, s.next, len(s.hooks[p.Phase])); j >= 0 {
		s.leave("it ended %s without running its hook %s (a hook may have taken it away)", p.Phase, s.hooks[p.Phase][j].Name)
	}
	s.next, s.ended, s.finished = len(s.hooks[p.Phase]), true, ""
	return 0, nil
}

// enter moves the account to phase, which may not come before the one
// being run; a phase it leaves or passes over should have run whole.
func (s *sequence) enter(phase, what string) error {
	i := slices.Index(elements.Phases, phase)
	switch {
	case i < 0:
		return violation("the helper VM said it runs a hook of %q, which is not a phase", phase)
	case i < s.phase:
		return violation("the helper VM %s %s after it ran %s", what, phase, elements.Phases[s.phase])
	case i == s.phase:
		return nil
	}
	for p := max(s.phase, 0); p < i; p++ {
		name, from := elements.Phases[p], 0
		if p == s.phase {
			from = s.next
		}
		if j := s.skipped(name, from, len(s.hooks[name])); j >= 0 {
			s.leave("it went on to %s without running %s/%s (a hook may have taken it away)", phase, name, s.hooks[name][j].Name)
		}
	}
	s.phase, s.next, s.ended, s.finished = i, 0, false, ""
	return nil
}

// skipped is the index of the first hook of phase from index from up to
// to that runs for certain in a phase that runs whole, or -1.
func (s *sequence) skipped(phase string, from, to int) int {
	if !slices.Contains(wholePhases, phase) {
		return -1
	}
	for j := from; j < to; j++ {
		if s.hooks[phase][j].Regular {
			return j
		}
	}
	return -1
}

// leave notes that the build left the hooks the host merged.
func (s *sequence) leave(format string, args ...any) {
	if s.offList == "" {
		s.offList = fmt.Sprintf(format, args...)
	}
}
