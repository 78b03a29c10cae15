package build

import (
	"archive/tar"
	"bytes"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/runparts"
	"github.com/dibvm/dibvm/guestagent/api"
)

// mergedHooks reads, from the elements tar, the hooks dib-run-parts runs
// in each phase, in its order: executable files in hooks/<phase>, which
// run for certain, and symlinks there, which run if what they point to
// is executable.
func mergedHooks(tarball []byte) (map[string][]hookFiles, error) {
	runs := map[string]map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rest, ok := strings.CutPrefix(hdr.Name, "hooks/")
		if !ok {
			continue
		}
		phase, name, ok := strings.Cut(rest, "/")
		if !ok || strings.Contains(name, "/") || !slices.Contains(elements.Phases, phase) || !runparts.ScriptName.MatchString(name) {
			continue
		}
		if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeReg && hdr.Mode&0o111 != 0 {
			if runs[phase] == nil {
				runs[phase] = map[string]bool{}
			}
			runs[phase][name] = hdr.Typeflag == tar.TypeReg
		}
	}
	out := map[string][]hookFiles{}
	for phase, names := range runs {
		sorted := slices.Collect(maps.Keys(names))
		runparts.SortNumeric(sorted) // as the guest sorts them
		for _, n := range sorted {
			out[phase] = append(out[phase], hookFiles{name: n, regular: names[n]})
		}
	}
	return out, nil
}

// sequence is the host's own account of where a build is: the hooks it
// merged, phase by phase in the order DIB runs them, and which of them
// the build said it started and finished. The build may start only the
// next hook of that list (passing over only symlinks, which may not
// run), each once, and never go back; a phase whose tree can be kept
// must run every hook that runs for certain. So when the build reaches a
// point where the tree can be kept, the host knows that no hook after it
// has started: a hook that is running can write control messages, but
// only after the host heard it start, and nothing it writes can take the
// account back to a point before it.
type sequence struct {
	hooks map[string][]hookFiles
	phase int // index in elements.Phases of the phase being run; -1 before root.d
	next  int // index in hooks of phase of the first hook not started

	running  string    // the hook started and not finished
	started  time.Time // when the host heard it start
	finished string    // the last hook finished in phase
	took     time.Duration
}

// wholePhases are the phases that run every hook of theirs in every
// build: those up to the last a tree is kept after. (block-device.d runs
// only for disk images.)
var wholePhases = elements.Phases[:slices.Index(elements.Phases, api.CheckpointPhases[len(api.CheckpointPhases)-1])+1]

// newSequence starts the account of a build of hooks, resumed at resume
// (a CheckpointName) or from the start.
func newSequence(hooks map[string][]hookFiles, resume string) *sequence {
	s := &sequence{hooks: hooks, phase: -1}
	if resume != "" {
		phase, hook, _ := strings.Cut(resume, "/")
		s.phase = slices.Index(elements.Phases, phase)
		s.next = len(hooks[phase])
		if hook != "" {
			s.next = slices.IndexFunc(hooks[phase], func(h hookFiles) bool { return h.name == hook }) + 1
			s.finished = hook
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
	i := slices.IndexFunc(list, func(h hookFiles) bool { return h.name == script })
	switch {
	case i < 0:
		return violation("the helper VM said it starts %s/%s, which is no hook of the build's", phase, script)
	case i < s.next:
		return violation("the helper VM said it starts %s/%s, which it had started already", phase, script)
	}
	if j := s.skipped(phase, i); j >= 0 {
		return violation("the helper VM said it starts %s/%s, but never ran %s, which comes before it", phase, script, list[j].name)
	}
	s.next, s.running, s.started, s.finished = i+1, script, now, ""
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
// kept: after the hook of p's phase it last finished, with none running;
// or at the end of p's phase, all its hooks and those of the phases
// before it run. It returns how long the hook took by the host's clock.
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
			return 0, violation("the helper VM stopped at %q, but the hook it last finished is not that one", name)
		}
		return s.took, nil
	}
	if err := s.enter(p.Phase, "ended it"); err != nil {
		return 0, err
	}
	if j := s.skipped(p.Phase, len(s.hooks[p.Phase])); j >= 0 {
		return 0, violation("the helper VM said %s ended, but never ran its hook %s", p.Phase, s.hooks[p.Phase][j].name)
	}
	s.next, s.finished = len(s.hooks[p.Phase]), ""
	return 0, nil
}

// enter moves the account to phase, which may not come before the one
// being run; every phase it leaves or passes over must have run whole.
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
		name := elements.Phases[p]
		from := 0
		if p == s.phase {
			from = s.next
		}
		if j := s.skippedFrom(name, from, len(s.hooks[name])); j >= 0 {
			return violation("the helper VM %s %s, but never ran %s/%s", what, phase, name, s.hooks[name][j].name)
		}
	}
	s.phase, s.next, s.finished = i, 0, ""
	return nil
}

// skipped is the index of the first hook of phase before index to that
// the build passed over and that runs for certain, or -1.
func (s *sequence) skipped(phase string, to int) int {
	return s.skippedFrom(phase, s.next, to)
}

func (s *sequence) skippedFrom(phase string, from, to int) int {
	if !slices.Contains(wholePhases, phase) {
		return -1
	}
	for j := from; j < to; j++ {
		if s.hooks[phase][j].regular {
			return j
		}
	}
	return -1
}
