// Package pkgtools is the agent's side of DIB's package-installs element:
// package-installs-squash, which squashes the build's package-installs
// files into /tmp/package-installs.json in the extra-data.d phase, and
// package-installs-v2, which installs or removes one phase's packages in
// the chroot. DIB ships both as Python scripts; here the static agent
// plays them, so a target needs no Python for them.
package pkgtools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/pkginstalls"
	"github.com/dibvm/dibvm/elements/pkgmap"
)

// SquashMain is `package-installs-squash --elements="A B" --path=DIRS OUT`.
func SquashMain(args []string, stdout, stderr io.Writer) int {
	var names, path, out string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--elements="):
			names = strings.TrimPrefix(a, "--elements=")
		case strings.HasPrefix(a, "--path="):
			path = strings.TrimPrefix(a, "--path=")
		case !strings.HasPrefix(a, "-") && out == "":
			out = a
		default:
			fmt.Fprintf(stderr, "package-installs-squash: unexpected argument %q\n", a)
			return 2
		}
	}
	if out == "" {
		fmt.Fprintln(stderr, "usage: package-installs-squash --elements=\"ELEMENT...\" --path=ELEMENTS_PATH OUTFILE")
		return 2
	}
	if err := squash(strings.Fields(names), path, out, stderr); err != nil {
		fmt.Fprintf(stderr, "package-installs-squash: %v\n", err)
		return 1
	}
	return 0
}

func squash(names []string, path, out string, stderr io.Writer) error {
	lib, err := elements.NewLibrary(path, nil)
	if err != nil {
		return err
	}
	var els []*elements.Element
	for _, n := range names {
		e, err := lib.Get(n)
		if err != nil {
			return err
		}
		els = append(els, e)
	}
	r, warnings, err := pkginstalls.Squash(els, os.LookupEnv)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "package-installs-squash: warning: %s\n", w)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, data, "", "  ")
	pretty.WriteByte('\n')
	return os.WriteFile(out, pretty.Bytes(), 0o644)
}

// InstallMain is `package-installs-v2 --phase PHASE [--uninstall] [-n] FILE`:
// it maps each element's packages through that element's pkg-map and
// hands them all to one install-packages call, as DIB's script does.
func InstallMain(args []string, stdout, stderr io.Writer) int {
	var phase, file string
	var uninstall, noop bool
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--phase" && i+1 < len(args):
			i++
			phase = args[i]
		case strings.HasPrefix(a, "--phase="):
			phase = strings.TrimPrefix(a, "--phase=")
		case a == "--uninstall":
			uninstall = true
		case a == "-n" || a == "--noop":
			noop = true
		case !strings.HasPrefix(a, "-") && file == "":
			file = a
		default:
			fmt.Fprintf(stderr, "package-installs-v2: unexpected argument %q\n", a)
			return 2
		}
	}
	if phase == "" || file == "" {
		fmt.Fprintln(stderr, "usage: package-installs-v2 --phase PHASE [--uninstall] [-n] FILE")
		return 2
	}
	pkgs, askedBy, err := phasePackages(file, phase, uninstall, pkgmap.DefaultDir, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "package-installs-v2: %v\n", err)
		return 1
	}
	verb := "install"
	if uninstall {
		verb = "uninstall"
	}
	if len(pkgs) == 0 {
		fmt.Fprintf(stdout, "Nothing to %s\n", verb)
		return 0
	}
	cmdline := []string{"install-packages"}
	if uninstall {
		cmdline = append(cmdline, "-e")
	}
	cmdline = append(cmdline, pkgs...)
	fmt.Fprintf(stdout, "Running command: %s\n", strings.Join(cmdline, " "))
	if noop {
		return 0
	}
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	// apt's words are kept (the last of them) to say, on a failure,
	// which element asked for a package the archive does not have.
	seen := &lastLines{max: 200}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(stdout, seen), io.MultiWriter(stderr, seen)
	if err := cmd.Run(); err != nil {
		for _, l := range explainMissing(seen.String(), askedBy) {
			fmt.Fprintf(stderr, "package-installs-v2: %s\n", l)
		}
		fmt.Fprintf(stderr, "package-installs-v2: install-packages failed: %v\n", err)
		return 1
	}
	return 0
}

// missingPackage matches apt's ways of saying that it has no package.
var missingPackage = regexp.MustCompile(`(?m)(?:Unable to locate package |Package '?)([a-z0-9][a-z0-9+.:-]*)'?(?: has no installation candidate| is not available)?`)

// explainMissing names, for each package apt could not find, the element
// whose package-installs asked for it (and under which name, where its
// pkg-map renamed it).
func explainMissing(aptOutput string, askedBy map[string]asked) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range missingPackage.FindAllStringSubmatch(aptOutput, -1) {
		name := m[1]
		a, ok := askedBy[name]
		if !ok || seen[name] || !(strings.Contains(m[0], "Unable to locate") || strings.Contains(m[0], "has no installation candidate") || strings.Contains(m[0], "is not available")) {
			continue
		}
		seen[name] = true
		as := ""
		if a.name != name {
			as = fmt.Sprintf(" as %s (its pkg-map made it %s)", a.name, name)
		}
		out = append(out, fmt.Sprintf("the archive has no package %s: element %s asked for it%s in its package-installs file; drop it there, or map it for this release in the element's pkg-map", name, a.element, as))
	}
	return out
}

// asked is who asked for a package: the element, and the name it used.
type asked struct{ element, name string }

// lastLines keeps the last max lines written to it.
type lastLines struct {
	max     int
	lines   []string
	partial string
}

func (l *lastLines) Write(p []byte) (int, error) {
	parts := strings.Split(l.partial+string(p), "\n")
	l.partial = parts[len(parts)-1]
	l.lines = append(l.lines, parts[:len(parts)-1]...)
	if len(l.lines) > l.max {
		l.lines = l.lines[len(l.lines)-l.max:]
	}
	return len(p), nil
}

func (l *lastLines) String() string { return strings.Join(append(l.lines, l.partial), "\n") }

// phasePackages reads one phase's list from the squashed file and maps
// it through the pkg-maps in mapDir, element by element in first-seen
// order, dropping repeats.
func phasePackages(file, phase string, uninstall bool, mapDir string, stderr io.Writer) ([]string, map[string]asked, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	var all map[string]pkginstalls.Lists
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	lists := all[phase]
	pairs := lists.Install
	if uninstall {
		pairs = lists.Uninstall
	}
	var order []string
	byElement := map[string][]string{}
	for _, p := range pairs {
		if _, ok := byElement[p[1]]; !ok {
			order = append(order, p[1])
		}
		byElement[p[1]] = append(byElement[p[1]], p[0])
	}
	var pkgs []string
	askedBy := map[string]asked{}
	for _, el := range order {
		// One name at a time, so that each mapped name is known by the
		// name the element asked for.
		for _, orig := range byElement[el] {
			var out bytes.Buffer
			args := []string{"--prefix", "-", "--missing-ok", "--element", el, orig}
			if code := pkgmap.Main(args, os.Getenv, mapDir, &out, stderr); code != 0 {
				return nil, nil, fmt.Errorf("pkg-map failed for element %s (package %s)", el, orig)
			}
			for _, l := range strings.Split(out.String(), "\n") {
				mapped, ok := strings.CutPrefix(l, "-")
				if !ok {
					continue
				}
				// A map may name several packages for one.
				for _, name := range strings.Fields(mapped) {
					if !slices.Contains(pkgs, name) {
						pkgs = append(pkgs, name)
						askedBy[name] = asked{element: el, name: orig}
					}
				}
			}
		}
	}
	return pkgs, askedBy, nil
}
