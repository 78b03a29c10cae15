// Package runparts is dib-run-parts's choice and order of files: which
// files of a phase directory run, in which order, and which environment.d
// files are sourced before them. Host and guest share it, so the order
// dibvm reports is the order the guest runs.
package runparts

import (
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"
)

var (
	// ScriptName is what dib-run-parts runs: no dots, so editor backups
	// and "foo.sh" are skipped.
	ScriptName = regexp.MustCompile(`^[0-9A-Za-z_-]+$`)
	// EnvironmentName is what it sources from environment.d.
	EnvironmentName = regexp.MustCompile(`^[0-9A-Za-z_.-]+$`)
)

// Entry is a file in a phase directory; Mode is that of the file itself,
// symlinks followed.
type Entry struct {
	Name string
	Mode fs.FileMode
}

// Skipped is a file dib-run-parts passes over, and why.
type Skipped struct {
	Name   string
	Reason string
}

// Scripts returns the names of the executable regular files whose names
// match ScriptName, in run order, and the regular files it skips.
// Directories are not candidates (install-types keeps its per-type
// scripts in them) and are not reported.
func Scripts(entries []Entry) (run []string, skipped []Skipped) {
	for _, e := range entries {
		switch {
		case !e.Mode.IsRegular():
		case e.Mode.Perm()&0o111 == 0:
			skipped = append(skipped, Skipped{e.Name, "not executable"})
		case !ScriptName.MatchString(e.Name):
			skipped = append(skipped, Skipped{e.Name, "name does not match " + ScriptName.String()})
		default:
			run = append(run, e.Name)
		}
	}
	SortNumeric(run)
	return run, skipped
}

// EnvironmentFiles returns the environment.d files to source, in order,
// and those skipped for their names. DIB sorts their full paths with
// `sort -n`; every path starts with "/", so the numeric key is always
// zero and the order is simply byte-wise: 100-z before 20-y before 3-x.
func EnvironmentFiles(entries []Entry) (source []string, skipped []Skipped) {
	for _, e := range entries {
		switch {
		case !e.Mode.IsRegular():
		case !EnvironmentName.MatchString(e.Name):
			skipped = append(skipped, Skipped{e.Name, "name does not match " + EnvironmentName.String()})
		default:
			source = append(source, e.Name)
		}
	}
	sort.Strings(source)
	return source, skipped
}

// SortNumeric sorts names as `LANG=C sort -n` does.
func SortNumeric(names []string) {
	sort.SliceStable(names, func(i, j int) bool { return LessNumeric(names[i], names[j]) })
}

// LessNumeric orders as `LANG=C sort -n`: by the number that starts the
// name (leading blanks, an optional minus, digits; none counts as 0), and
// names with equal numbers byte-wise, as GNU sort's last resort.
// So abc < 01-z < 9-y < 10-a.
func LessNumeric(a, b string) bool {
	if c := compareNumbers(numericPrefix(a), numericPrefix(b)); c != 0 {
		return c < 0
	}
	return a < b
}

// number is a leading integer as a sign and its digits, without leading
// zeros, so that arbitrarily long numbers compare exactly.
type number struct {
	neg    bool
	digits string
}

func numericPrefix(s string) number {
	s = strings.TrimLeft(s, " \t")
	var n number
	if strings.HasPrefix(s, "-") {
		n.neg = true
		s = s[1:]
	}
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n.digits = strings.TrimLeft(s[:end], "0")
	if n.digits == "" {
		n.neg = false // -0, and no number at all, are zero
	}
	return n
}

func compareNumbers(a, b number) int {
	if a.neg != b.neg {
		if a.neg {
			return -1
		}
		return 1
	}
	c := compareMagnitude(a.digits, b.digits)
	if a.neg {
		return -c
	}
	return c
}

func compareMagnitude(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// Timing is how long one script ran.
type Timing struct {
	Name     string
	Duration time.Duration
}

// Profile formats the table dib-run-parts prints after a phase, line for
// line as DIB does (rows sorted by name byte-wise, as DIB's sort leaves
// them), each line prefixed with prefix.
func Profile(prefix, target string, timings []Timing) string {
	rows := append([]Timing(nil), timings...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	var b strings.Builder
	line := func(format string, args ...any) {
		b.WriteString(prefix)
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	line("%s", "----------------------- PROFILING -----------------------")
	line("")
	line("Target: %s", target)
	line("")
	line("%-40s %9s", "Script", "Seconds")
	line("%-40s %9s", strings.Repeat("-", 39), strings.Repeat("-", 10))
	line("")
	for _, r := range rows {
		line("%-40s %10.3f", r.Name, r.Duration.Seconds())
	}
	line("")
	line("%s", "--------------------- END PROFILING ---------------------")
	return b.String()
}
