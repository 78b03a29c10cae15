// Package breakpoint parses DIB's break= setting: where a build stops and
// opens a shell.
package breakpoint

import (
	"fmt"
	"strings"
)

// Phases are the phases a breakpoint can name, without their ".d".
var Phases = []string{
	"root", "extra-data", "pre-install", "install", "post-install",
	"post-root", "block-device", "pre-finalise", "finalise", "cleanup",
}

// AfterError is the breakpoint taken when a hook fails.
const AfterError = "after-error"

// Set is a parsed break= value.
type Set map[string]bool

// Parse reads a comma-separated list of before-<phase>, after-<phase>
// and after-error. Unlike DIB, which ignores what it does not know, an
// unknown phase is an error: a misspelt breakpoint would otherwise let the
// build run past the place the user wanted to stop.
func Parse(s string) (Set, error) {
	set := Set{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item == AfterError {
			set[item] = true
			continue
		}
		when, phase, ok := strings.Cut(item, "-")
		if !ok || (when != "before" && when != "after") {
			return nil, fmt.Errorf("break=%s: %q is not before-<phase>, after-<phase> or after-error", s, item)
		}
		if !known(strings.TrimSuffix(phase, ".d")) {
			return nil, fmt.Errorf("break=%s: unknown phase %q; phases are %s", s, phase, strings.Join(Phases, ", "))
		}
		set[when+"-"+strings.TrimSuffix(phase, ".d")] = true
	}
	return set, nil
}

func known(phase string) bool {
	for _, p := range Phases {
		if p == phase {
			return true
		}
	}
	return false
}

// Before reports whether the build stops before phase ("install").
func (s Set) Before(phase string) bool { return s["before-"+phase] }

// After reports whether the build stops after phase.
func (s Set) After(phase string) bool { return s["after-"+phase] }

// OnError reports whether a failing hook opens a shell.
func (s Set) OnError() bool { return s[AfterError] }

// chrootPhases run inside the image's chroot; the shell at their
// breakpoints is opened there too.
var chrootPhases = map[string]bool{"pre-install": true, "install": true, "post-install": true, "finalise": true}

// InChroot reports whether the shell at point belongs in the image's
// chroot. ok is false for after-error, whose shell is wherever the build
// failed, and for what is not a breakpoint.
func InChroot(point string) (chroot, ok bool) {
	_, phase, found := strings.Cut(point, "-")
	if !found || point == AfterError || !known(phase) {
		return false, false
	}
	return chrootPhases[phase], true
}
