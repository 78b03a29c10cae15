package cli

import (
	"fmt"
	"runtime/debug"
)

// Version is dibvm's semantic version: this is the one place it is kept.
const Version = "0.2.0"

// commit is the commit this binary was built from, as make sets it
// ("+dirty" with changes not committed).
var commit string

// versionLine is the version and what this binary was built from: the
// commit (make's, else the one Go recorded from a git checkout) and the
// Go release.
func versionLine() string {
	c, goVersion := builtFrom()
	return fmt.Sprintf("%s (commit %s, %s)", Version, c, goVersion)
}

// builtFrom is the commit this binary was built from ("unknown" if it
// cannot tell, "+dirty" with changes not committed) and its Go release.
func builtFrom() (string, string) {
	c, dirty := commit, false
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value[:min(12, len(s.Value))]
			case s.Key == "vcs.modified" && commit == "":
				dirty = s.Value == "true"
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	if dirty {
		c += "+dirty"
	}
	return c, goVersion
}
