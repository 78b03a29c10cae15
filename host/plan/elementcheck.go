package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/pkginstalls"
	"github.com/dibvm/dibvm/elements/pkgmap"
	"github.com/dibvm/dibvm/elements/sourcerepos"
)

// CheckElements checks what the elements hold that the host can read
// without running any of it: their package-installs files (with their
// when: conditions), their pkg-map files, and the shell syntax of their
// environment.d files and shell hooks. It finds every problem, not only
// the first; the warnings are for what DIB passes over without a word.
// lookup reads the build's environment; arch is the image's.
func CheckElements(els []*elements.Element, hooks *elements.Hooks, lookup func(string) (string, bool), arch string) (warnings []string, err error) {
	var errs []error
	// when: conditions read variables that the elements' environment.d
	// files set (ubuntu-minimal's DIB_UBUNTU_KERNEL), which only the
	// build evaluates: one that some environment.d file assigns counts
	// as set, so that the files are checked without rejecting what a
	// build would accept.
	assigned := envAssigned(hooks)
	_, w, err := pkginstalls.Squash(els, func(name string) (string, bool) {
		if v, ok := lookup(name); ok {
			return v, true
		}
		if name == "ARCH" {
			return arch, true
		}
		return "", assigned[name]
	})
	warnings = append(warnings, w...)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range els {
		data, err := fs.ReadFile(e.FS, "pkg-map")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			_, err = pkgmap.Parse(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("element %s (%s): pkg-map: %w", e.Name, e.Path, err))
		}
	}
	errs = append(errs, checkShell(hooks)...)
	errs = append(errs, checkSourceRepos(els)...)
	warnings = append(warnings, hookDirectories(hooks)...)
	return warnings, errors.Join(errs...)
}

// checkSourceRepos reads the elements' source-repository files when
// source-repositories is among them: DIB reads them in extra-data.d.
func checkSourceRepos(els []*elements.Element) []error {
	if !slices.ContainsFunc(els, func(e *elements.Element) bool { return e.Name == "source-repositories" }) {
		return nil
	}
	var errs []error
	for _, e := range els {
		if _, err := sourcerepos.Read(e.Name, e.FS); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// assignment is a shell variable assignment at the start of a line.
var assignment = regexp.MustCompile(`(?m)^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=`)

// envAssigned are the variables the environment.d files assign, read as
// text: nothing of an element runs on the host.
func envAssigned(h *elements.Hooks) map[string]bool {
	names := map[string]bool{}
	files, _ := h.Environment()
	for _, f := range files {
		data, err := fs.ReadFile(f.Element.FS, f.File())
		if err != nil {
			continue
		}
		for _, m := range assignment.FindAllSubmatch(data, -1) {
			names[string(m[1])] = true
		}
	}
	return names
}

// shellHook says whether a hook is a shell script: an environment.d file
// (bash sources them), or a file whose #! line names sh or bash.
var shellInterpreter = regexp.MustCompile(`^#!\s*(/usr)?/bin/(env\s+)?(ba)?sh\b`)

// checkShell has bash parse, and only parse (-n: no command runs), every
// environment.d file and shell hook, a few at a time. Where the host has
// no bash, the guest's bash finds the same errors when the hook runs.
func checkShell(h *elements.Hooks) []error {
	bash, err := exec.LookPath("bash")
	if err != nil {
		return nil
	}
	var hooks []elements.Hook
	for p, hook := range h.Files {
		if !hook.Mode.IsRegular() || hook.Link != "" {
			continue
		}
		dir := path.Dir(p)
		if dir == "environment.d" || isPhase(dir) {
			hooks = append(hooks, hook)
		}
	}
	sort.Slice(hooks, func(i, j int) bool { return hooks[i].Path < hooks[j].Path })
	errs := make([]error, len(hooks))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, hook := range hooks {
		data, err := fs.ReadFile(hook.Element.FS, hook.File())
		if err != nil {
			errs[i] = fmt.Errorf("element %s: %s: %w", hook.Element.Name, hook.Path, err)
			continue
		}
		if path.Dir(hook.Path) != "environment.d" && !shellInterpreter.Match(data) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cmd := exec.Command(bash, "-n")
			cmd.Stdin = bytes.NewReader(data)
			out, err := cmd.CombinedOutput()
			if err != nil {
				msg := strings.TrimSpace(strings.ReplaceAll(string(out), bash+": ", ""))
				msg = strings.ReplaceAll(msg, "\n", "; ")
				if msg == "" {
					msg = err.Error()
				}
				errs[i] = fmt.Errorf("element %s (%s): %s is not valid shell: %s", hook.Element.Name, hook.Element.Path, hook.File(), msg)
			}
		}()
	}
	wg.Wait()
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

func isPhase(dir string) bool {
	for _, p := range elements.Phases {
		if dir == p {
			return true
		}
	}
	return false
}

// installTypeDir is an install.d subdirectory of DIB's install types.
var installTypeDir = regexp.MustCompile(`^[^/]+-install$`)

// hookDirectories warns of directories in a phase directory: dib-run-parts
// passes over them without a word, and a hook that is a directory never
// runs.
func hookDirectories(h *elements.Hooks) []string {
	seen := map[string]bool{}
	var out []string
	for p, hook := range h.Files {
		parts := strings.SplitN(p, "/", 3)
		if len(parts) < 3 || !isPhase(parts[0]) || (parts[0] == "install.d" && installTypeDir.MatchString(parts[1])) {
			continue
		}
		dir := parts[0] + "/" + parts[1]
		if seen[dir] {
			continue
		}
		seen[dir] = true
		out = append(out, fmt.Sprintf("element %s: %s is a directory, not a hook: it never runs (dib-run-parts passes over directories, as DIB's does)", hook.Element.Name, dir))
	}
	sort.Strings(out)
	return out
}

// checkInstallType refuses a default install type (--install-type, or
// DIB_DEFAULT_INSTALLTYPE) that is neither DIB's source or package nor
// the type of any install.d/<prefix>-<type>-install directory of the
// build's elements: no element would install anything by it.
func checkInstallType(h *elements.Hooks, want string) error {
	if want == "" {
		return nil
	}
	types := map[string]bool{"source": true, "package": true}
	for p := range h.Files {
		parts := strings.SplitN(p, "/", 3)
		if len(parts) == 3 && parts[0] == "install.d" && installTypeDir.MatchString(parts[1]) {
			dir := strings.TrimSuffix(parts[1], "-install")
			types[dir[strings.LastIndex(dir, "-")+1:]] = true
		}
	}
	if types[want] {
		return nil
	}
	var known []string
	for t := range types {
		known = append(known, t)
	}
	sort.Strings(known)
	return fmt.Errorf("--install-type %s (or DIB_DEFAULT_INSTALLTYPE): no element installs that way; the types here are %s", want, strings.Join(known, ", "))
}
