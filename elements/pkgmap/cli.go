package pkgmap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Exit codes, as DIB's pkg-map has them: callers such as package-installs
// tell a failure (1) from an element that has no map (2).
const (
	ExitFailure = 1
	ExitNoMap   = 2
)

// DefaultDir is where the maps of a build's elements are installed.
const DefaultDir = "/usr/share/pkg-map"

// Usage is pkg-map's help, as --help prints it.
const Usage = `usage: pkg-map (--element ELEMENT | --pkg-map FILE) [--distro DISTRO] [--release RELEASE]
               [--prefix PREFIX] [--missing-ok] [--debug] NAME...

Map generic package names to a distribution's through an element's pkg-map
file (` + DefaultDir + `/ELEMENT, or FILE), for DISTRO (default $DISTRO_NAME)
and RELEASE (default $DIB_RELEASE). Exit status 1 is a failure, 2 an
element without a map.
`

// ExitUsage is argparse's status for a command line it cannot read, as
// DIB's pkg-map exits for a flag it does not know.
const ExitUsage = 2

// Main runs the pkg-map command with args (without the program name).
// Arguments that are not flags are package names, wherever they stand;
// after -- every argument is one. A flag it does not know is refused, all
// of them named, before anything else is checked, as argparse does.
// getenv supplies DISTRO_NAME and DIB_RELEASE; dir is where
// --element looks.
func Main(args []string, getenv func(string) string, dir string, stdout, stderr io.Writer) int {
	var (
		element, mapFile, prefix string
		distro                   = getenv("DISTRO_NAME")
		release                  = getenv("DIB_RELEASE")
		missingOK                bool
		names, unknown           []string
		onlyNames                bool
	)
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "pkg-map: "+format+"\n", a...)
		return code
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if onlyNames {
			names = append(names, a)
			continue
		}
		flag, value, hasValue := strings.Cut(a, "=")
		takeValue := func() (string, bool) {
			if hasValue {
				return value, true
			}
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			return "", false
		}
		var ok = true
		switch flag {
		case "--element":
			element, ok = takeValue()
		case "--pkg-map":
			mapFile, ok = takeValue()
		case "--distro":
			distro, ok = takeValue()
		case "--release":
			release, ok = takeValue()
		case "--prefix":
			prefix, ok = takeValue()
		case "--missing-ok":
			missingOK = true
		case "--debug":
		case "-h", "--help":
			fmt.Fprint(stdout, Usage)
			return 0
		case "--":
			onlyNames = true
		default:
			if isFlag(a) {
				unknown = append(unknown, a)
			} else {
				names = append(names, a)
			}
		}
		if !ok {
			return fail(ExitFailure, "%s needs a value", flag)
		}
	}
	if len(unknown) > 0 {
		usage, _, _ := strings.Cut(Usage, "\n\n")
		fmt.Fprintln(stderr, usage)
		return fail(ExitUsage, "error: unrecognized arguments: %s (see pkg-map --help)", strings.Join(unknown, " "))
	}
	switch {
	case element == "" && mapFile == "":
		return fail(ExitFailure, "please specify an --element argument")
	case element != "" && mapFile != "":
		return fail(ExitFailure, "specify either --element or --pkg-map")
	case distro == "":
		return fail(ExitFailure, "please specify a --distro argument or set DISTRO_NAME")
	}
	label := element
	if mapFile == "" {
		mapFile = filepath.Join(dir, element)
	} else {
		label = mapFile
	}
	data, err := os.ReadFile(mapFile)
	if errors.Is(err, fs.ErrNotExist) {
		if !missingOK {
			return fail(ExitNoMap, "required pkg-map for %s does not exist (%s)", label, mapFile)
		}
		for _, n := range names {
			fmt.Fprintln(stdout, prefix+n)
		}
		return 0
	}
	if err != nil {
		return fail(ExitFailure, "%v", err)
	}
	m, err := Parse(data)
	if err != nil {
		return fail(ExitFailure, "%s: %v", mapFile, err)
	}
	out, err := m.Resolve(distro, release, names, missingOK)
	for _, l := range out {
		fmt.Fprintln(stdout, prefix+l)
	}
	if err != nil {
		return fail(ExitFailure, "%s has %v on %s", label, err, distro)
	}
	return 0
}

// isFlag tells a flag from a package name as argparse does: it starts
// with a dash, and is neither a lone dash nor a negative number.
func isFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	_, err := strconv.ParseFloat(a, 64)
	return err != nil
}
