package session

import (
	"fmt"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/termsafe"
)

// HookError is a failed hook, with the element it belongs to.
type HookError struct {
	Failure *api.Failure
	Element string
	Hint    string // what the host saw that explains the failure, if anything
}

func (e *HookError) Error() string {
	var b strings.Builder
	how := fmt.Sprintf("exit status %d", e.Failure.Status)
	if e.Failure.Signal != "" {
		how = e.Failure.Signal
	}
	fmt.Fprintf(&b, "the build failed in a hook\n  element: %s\n  phase:   %s\n  script:  %s\n  status:  %s\n",
		e.Element, e.Failure.Phase, e.Failure.Script, termsafe.String(how))
	if len(e.Failure.Tail) > 0 {
		b.WriteString("  last lines of its output:\n")
		for _, l := range e.Failure.Tail {
			b.WriteString("    " + termsafe.String(api.ShortenTailLine(l)) + "\n")
		}
	}
	if e.Hint != "" {
		b.WriteString(e.Hint + "\n")
	}
	b.WriteString("Nothing was written to the output path. Fix the hook, or rerun with break=after-error to get a shell where it failed.")
	return b.String()
}

// hookHint adds to what the host saw (disk) what a failed hook's own last
// lines explain.
func hookHint(f *api.Failure, disk string) string {
	for _, l := range f.Tail {
		// glibc refuses to start on a CPU below the level it was built
		// for; the helper's CPU under TCG is x86-64-v2 unless asked.
		if strings.Contains(l, "CPU ISA level is lower than required") {
			return strings.TrimLeft(disk+"\n", "\n") + "The image's binaries need a newer x86-64 level than the helper VM's CPU (x86-64-v2 under TCG): build again with --cpu-model max."
		}
	}
	return disk
}

func elementOf(h *elements.Hooks, phase, script string) string {
	if hook, ok := h.Files[phase+"/"+script]; ok {
		return hook.Element.Name
	}
	return "(none: the build's own step)"
}
