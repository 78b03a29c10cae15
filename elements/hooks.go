package elements

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/dibvm/dibvm/elements/installtypes"
	"github.com/dibvm/dibvm/elements/runparts"
)

// Hook is one file of the merged hook tree and where it came from.
type Hook struct {
	Path    string      // in the merged tree, e.g. "install.d/10-foo"
	Element *Element    // the element that has it
	Source  string      // its path in the element, when not Path (install types)
	Mode    fs.FileMode // type and permissions, symlinks followed
	// Link is the target of a hook that is a symlink (inside its
	// element: see checkTree). The merged tree keeps it as a link, as
	// DIB's cp -a does.
	Link string
}

// File is the hook's path within its element.
func (h Hook) File() string {
	if h.Source != "" {
		return h.Source
	}
	return h.Path
}

// Hooks is the merge of every element's subdirectories (root.d,
// install.d, environment.d, bin, ...) into one tree, as DIB builds
// $TMP_HOOKS_PATH. Top-level files such as package-installs.yaml and
// pkg-map stay with their element.
type Hooks struct {
	Files map[string]Hook // by merged path
}

// notHooks are element subdirectories that are not merged: test code and
// the test elements of DIB's functional tests.
var notHooks = map[string]bool{"tests": true, "test-elements": true, "__pycache__": true}

// MergeHooks merges the subdirectories of els. The same file in two
// elements is an error that names both; directories of the same name
// merge.
func MergeHooks(els []*Element) (*Hooks, error) {
	h := &Hooks{Files: map[string]Hook{}}
	for _, e := range els {
		top, err := fs.ReadDir(e.FS, ".")
		if err != nil {
			return nil, fmt.Errorf("element %s (%s): %w", e.Name, e.Path, err)
		}
		for _, d := range top {
			if notHooks[d.Name()] {
				continue
			}
			isDir, err := followDir(e, d.Name(), d)
			if err != nil {
				return nil, err
			}
			if isDir {
				if err := h.add(e, d.Name()); err != nil {
					return nil, err
				}
			}
		}
	}
	return h, nil
}

// followDir reports whether name is a directory, following a symlink as
// DIB's find -follow does.
func followDir(e *Element, name string, d fs.DirEntry) (bool, error) {
	if d.Type()&fs.ModeSymlink == 0 {
		return d.IsDir(), nil
	}
	fi, err := fs.Stat(e.FS, name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // dangling: a link, not a directory
	}
	if err != nil {
		return false, fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, name, err)
	}
	return fi.IsDir(), nil
}

// add merges directory dir of element e.
func (h *Hooks) add(e *Element, dir string) error {
	entries, err := fs.ReadDir(e.FS, dir)
	if err != nil {
		return fmt.Errorf("element %s (%s): cannot read %s: %w", e.Name, e.Path, dir, err)
	}
	for _, d := range entries {
		p := path.Join(dir, d.Name())
		isDir, err := followDir(e, p, d)
		if err != nil {
			return err
		}
		if isDir {
			if err := h.add(e, p); err != nil {
				return err
			}
			continue
		}
		if prev, ok := h.Files[p]; ok {
			return fmt.Errorf("duplicate hook %s: both element %s (%s) and element %s (%s) have it; rename one of them",
				p, prev.Element.Name, prev.Element.Path, e.Name, e.Path)
		}
		hook := Hook{Path: p, Element: e}
		if d.Type()&fs.ModeSymlink != 0 {
			if hook.Link, err = fs.ReadLink(e.FS, p); err != nil {
				return fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, p, err)
			}
		}
		fi, err := fs.Stat(e.FS, p)
		switch {
		case err == nil:
			hook.Mode = mode(e, p, fi.Mode())
		case hook.Link != "" && errors.Is(err, fs.ErrNotExist):
			// A dangling link is carried as it is (static/ may hold links
			// meant for the image); as a hook it is not executable.
			hook.Mode = fs.ModeSymlink
		default:
			return fmt.Errorf("element %s (%s): %s: %w", e.Name, e.Path, p, err)
		}
		h.Files[p] = hook
	}
	return nil
}

// mode is the file's mode. The built-in library is embedded, and embedded
// files have no modes: there, hooks directly in a phase directory and
// programs in bin/, and in bin/ and sbin/ directories of a static/ tree,
// are executable, everything else is not.
func mode(e *Element, p string, m fs.FileMode) fs.FileMode {
	if !e.Builtin || !m.IsRegular() {
		return m
	}
	dir := path.Dir(p)
	if dir == "bin" || (strings.HasSuffix(dir, ".d") && !strings.Contains(dir, "/") && dir != "environment.d") {
		return 0o755
	}
	if base := path.Base(dir); strings.HasPrefix(p, "static/") && (base == "bin" || base == "sbin") {
		return 0o755
	}
	return 0o644
}

// entries lists the files directly in dir of the merged tree.
func (h *Hooks) entries(dir string) []runparts.Entry {
	var out []runparts.Entry
	for p, hook := range h.Files {
		if path.Dir(p) == dir {
			out = append(out, runparts.Entry{Name: path.Base(p), Mode: hook.Mode})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Phase returns the hooks dib-run-parts runs for phase ("install.d"), in
// order, and a warning for each file it skips. DIB skips them silently
// unless tracing; dibvm always says so, naming the element.
func (h *Hooks) Phase(phase string) (run []Hook, warnings []string) {
	names, skipped := runparts.Scripts(h.entries(phase))
	for _, n := range names {
		run = append(run, h.Files[path.Join(phase, n)])
	}
	return run, h.warn(phase, skipped)
}

// Environment returns the environment.d files in the order they are
// sourced, and warnings for those skipped.
func (h *Hooks) Environment() (source []Hook, warnings []string) {
	names, skipped := runparts.EnvironmentFiles(h.entries("environment.d"))
	for _, n := range names {
		source = append(source, h.Files[path.Join("environment.d", n)])
	}
	return source, h.warn("environment.d", skipped)
}

func (h *Hooks) warn(dir string, skipped []runparts.Skipped) []string {
	var out []string
	for _, s := range skipped {
		hook := h.Files[path.Join(dir, s.Name)]
		fix := "rename it"
		if s.Reason == "not executable" {
			fix = "chmod +x it"
		}
		out = append(out, fmt.Sprintf("element %s: %s/%s is skipped: %s (%s to run it)", hook.Element.Name, dir, s.Name, s.Reason, fix))
	}
	return out
}

// Phases lists the phase directories DIB runs, in order.
var Phases = []string{
	"root.d", "extra-data.d", "pre-install.d", "install.d", "post-install.d",
	"post-root.d", "block-device.d", "pre-finalise.d", "finalise.d", "cleanup.d",
}

// ApplyInstallTypes puts the scripts of the selected
// install.d/<prefix>-<type>-install directories directly into install.d,
// where dib-run-parts finds them, as DIB's install-types element links
// them. environ is the build's environment as KEY=VALUE. A script that
// replaces one already there is reported.
func (h *Hooks) ApplyInstallTypes(environ []string) (warnings []string) {
	subdirs := map[string]bool{}
	for p := range h.Files {
		if rest, ok := strings.CutPrefix(p, "install.d/"); ok {
			if dir, _, nested := strings.Cut(rest, "/"); nested {
				subdirs[dir] = true
			}
		}
	}
	var dirs []string
	for d := range subdirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range installtypes.Select(dirs, environ) {
		prefix := "install.d/" + d + "/"
		var names []string
		for p := range h.Files {
			if rest, ok := strings.CutPrefix(p, prefix); ok && !strings.Contains(rest, "/") {
				names = append(names, rest)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			hook := h.Files[prefix+n]
			target := "install.d/" + n
			if prev, ok := h.Files[target]; ok {
				warnings = append(warnings, fmt.Sprintf("element %s: %s replaces %s of element %s (install type %s)",
					hook.Element.Name, hook.Path, target, prev.Element.Name, d))
			}
			hook.Path = target
			hook.Source = prefix + n
			h.Files[target] = hook
		}
	}
	return warnings
}

// BuildHooks is the hook tree a build runs: the merge of els with the
// install types environ selects, and a warning for every hook that will
// be skipped.
func BuildHooks(els []*Element, environ []string) (*Hooks, []string, error) {
	h, err := MergeHooks(els)
	if err != nil {
		return nil, nil, err
	}
	warnings := h.ApplyInstallTypes(environ)
	for _, p := range Phases {
		_, w := h.Phase(p)
		warnings = append(warnings, w...)
	}
	_, w := h.Environment()
	return h, append(warnings, w...), nil
}
