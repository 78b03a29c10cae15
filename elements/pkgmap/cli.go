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
	inv, err := parseArgs(args, getenv)
	if err != nil {
		return fail(stderr, ExitFailure, "%v", err)
	}
	if inv.help {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if len(inv.unknown) > 0 {
		usage, _, _ := strings.Cut(Usage, "\n\n")
		fmt.Fprintln(stderr, usage)
		return fail(stderr, ExitUsage, "error: unrecognized arguments: %s (see pkg-map --help)", strings.Join(inv.unknown, " "))
	}
	switch {
	case inv.element == "" && inv.mapFile == "":
		return fail(stderr, ExitFailure, "please specify an --element argument")
	case inv.element != "" && inv.mapFile != "":
		return fail(stderr, ExitFailure, "specify either --element or --pkg-map")
	case inv.distro == "":
		return fail(stderr, ExitFailure, "please specify a --distro argument or set DISTRO_NAME")
	}
	return inv.run(dir, stdout, stderr)
}

// invocation is a pkg-map command line, read.
type invocation struct {
	element, mapFile, prefix string
	distro, release          string
	missingOK                bool
	names                    []string
	unknown                  []string // flags it does not know
	help                     bool     // --help, before any failure
}

// parseArgs reads pkg-map's command line. It stops at --help; a flag
// left without a value at the end is an error.
func parseArgs(args []string, getenv func(string) string) (*invocation, error) {
	inv := &invocation{distro: getenv("DISTRO_NAME"), release: getenv("DIB_RELEASE")}
	onlyNames := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if onlyNames {
			inv.names = append(inv.names, a)
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
			inv.element, ok = takeValue()
		case "--pkg-map":
			inv.mapFile, ok = takeValue()
		case "--distro":
			inv.distro, ok = takeValue()
		case "--release":
			inv.release, ok = takeValue()
		case "--prefix":
			inv.prefix, ok = takeValue()
		case "--missing-ok":
			inv.missingOK = true
		case "--debug":
		case "-h", "--help":
			inv.help = true
			return inv, nil
		case "--":
			onlyNames = true
		default:
			if isFlag(a) {
				inv.unknown = append(inv.unknown, a)
			} else {
				inv.names = append(inv.names, a)
			}
		}
		if !ok {
			return nil, fmt.Errorf("%s needs a value", flag)
		}
	}
	return inv, nil
}

// run maps the names through the element's map (in dir) or the map file,
// and prints them, each with the prefix.
func (inv *invocation) run(dir string, stdout, stderr io.Writer) int {
	label, mapFile := inv.element, inv.mapFile
	if mapFile == "" {
		mapFile = filepath.Join(dir, inv.element)
	} else {
		label = mapFile
	}
	data, err := os.ReadFile(mapFile)
	if errors.Is(err, fs.ErrNotExist) {
		if !inv.missingOK {
			return fail(stderr, ExitNoMap, "required pkg-map for %s does not exist (%s)", label, mapFile)
		}
		for _, n := range inv.names {
			fmt.Fprintln(stdout, inv.prefix+n)
		}
		return 0
	}
	if err != nil {
		return fail(stderr, ExitFailure, "%v", err)
	}
	m, err := Parse(data)
	if err != nil {
		return fail(stderr, ExitFailure, "%s: %v", mapFile, err)
	}
	out, err := m.Resolve(inv.distro, inv.release, inv.names, inv.missingOK)
	for _, l := range out {
		fmt.Fprintln(stdout, inv.prefix+l)
	}
	if err != nil {
		return fail(stderr, ExitFailure, "%s has %v on %s", label, err, inv.distro)
	}
	return 0
}

// fail prints a pkg-map error line and returns code, the exit status.
func fail(stderr io.Writer, code int, format string, a ...any) int {
	fmt.Fprintf(stderr, "pkg-map: "+format+"\n", a...)
	return code
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
