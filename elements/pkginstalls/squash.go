package pkginstalls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/elements"
)

// Env looks up an environment variable.
type Env func(name string) (string, bool)

// Pair is a package and the element that asked for it.
type Pair [2]string

// Lists are one phase's packages to install and to remove at its end.
type Lists struct {
	Install   []Pair `json:"install"`
	Uninstall []Pair `json:"uninstall"`
}

// Result is the squashed content of package-installs.json: phases in the
// order they were first seen.
type Result struct {
	order  []string
	phases map[string]*Lists
}

// NewResult returns an empty result.
func NewResult() *Result { return &Result{phases: map[string]*Lists{}} }

// Phase returns the lists for phase, or nil.
func (r *Result) Phase(phase string) *Lists { return r.phases[phase] }

// Phases lists the phases that have packages, in first-seen order.
func (r *Result) Phases() []string { return append([]string(nil), r.order...) }

func (r *Result) lists(phase string) *Lists {
	l, ok := r.phases[phase]
	if !ok {
		l = &Lists{Install: []Pair{}, Uninstall: []Pair{}}
		r.phases[phase] = l
		r.order = append(r.order, phase)
	}
	return l
}

// MarshalJSON writes the phases in order, as DIB's file has them.
func (r *Result) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range r.order {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p)
		v, err := json.Marshal(r.phases[p])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Files are the names, in the order read, of an element's package lists.
// When both exist, both count, as in DIB.
var Files = []string{"package-installs.json", "package-installs.yaml"}

// Squash reads the package-installs files of els, in order, and squashes
// them. Errors name the element and the file.
func Squash(els []*elements.Element, env Env) (*Result, []string, error) {
	r := NewResult()
	var warnings []string
	for _, e := range els {
		for _, name := range Files {
			data, err := fs.ReadFile(e.FS, name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("element %s: %s: %w", e.Name, name, err)
			}
			entries, warn, err := Parse(data)
			if err != nil {
				return nil, nil, fmt.Errorf("element %s: %s: %w", e.Name, name, err)
			}
			for _, w := range warn {
				warnings = append(warnings, fmt.Sprintf("element %s: %s: %s", e.Name, name, w))
			}
			if err := r.Add(e.Name, entries, env); err != nil {
				return nil, nil, fmt.Errorf("element %s: %s: %w", e.Name, name, err)
			}
		}
	}
	return r, warnings, nil
}

// Add squashes one element's entries into r.
//
// A package some element installs outright is never uninstalled: a plain
// install cancels earlier uninstalls of it, a later uninstall of an
// installed package is dropped, and a later build-only one is installed
// but not removed. Unlike DIB, an entry its conditions rule out has no
// effect at all (DIB let a ruled-out install still cancel an uninstall).
func (r *Result) Add(element string, entries []Entry, env Env) error {
	for _, e := range entries {
		for _, p := range e.Params {
			ok, err := applies(element, p, env)
			if err != nil {
				return fmt.Errorf("package %s: %w", e.Package, err)
			}
			if !ok {
				continue
			}
			r.add(element, e.Package, p)
		}
	}
	return nil
}

func (r *Result) add(element, pkg string, p Param) {
	l := r.lists(p.Phase)
	pair := Pair{pkg, element}
	has := func(list []Pair) bool {
		return slices.ContainsFunc(list, func(q Pair) bool { return q[0] == pkg })
	}
	if !p.Uninstall && !p.BuildOnly {
		l.Uninstall = slices.DeleteFunc(l.Uninstall, func(q Pair) bool { return q[0] == pkg })
		l.Install = append(l.Install, pair)
		return
	}
	if has(l.Install) && !has(l.Uninstall) {
		// Something installs it for good: keep it.
		if p.BuildOnly {
			l.Install = append(l.Install, pair)
		}
		return
	}
	if p.BuildOnly {
		l.Install = append(l.Install, pair)
	}
	l.Uninstall = append(l.Uninstall, pair)
}

// InstallType is an element's install type: DIB_INSTALLTYPE_<element,
// with - as _>, else DIB_DEFAULT_INSTALLTYPE, else source.
func InstallType(element string, env Env) string {
	if v, ok := env("DIB_INSTALLTYPE_" + strings.ReplaceAll(element, "-", "_")); ok && v != "" {
		return v
	}
	if v, ok := env("DIB_DEFAULT_INSTALLTYPE"); ok && v != "" {
		return v
	}
	return "source"
}

var whenRE = regexp.MustCompile(`^(\w+)\s*(!=|=)\s*(.*)$`)

// applies evaluates a parameter set's conditions.
func applies(element string, p Param, env Env) (bool, error) {
	if p.InstallType != "" && p.InstallType != InstallType(element, env) {
		return false, nil
	}
	if len(p.Arch) > 0 || len(p.NotArch) > 0 {
		arch, ok := env("ARCH")
		if !ok || arch == "" {
			return false, errors.New("arch or not-arch is given but ARCH is not set")
		}
		if len(p.Arch) > 0 && !slices.Contains(p.Arch, arch) {
			return false, nil
		}
		if slices.Contains(p.NotArch, arch) {
			return false, nil
		}
	}
	if p.PythonVersion != "" {
		if v, _ := env("DIB_PYTHON_VERSION"); v != p.PythonVersion {
			return false, nil
		}
	}
	// Every statement is checked, so an unset variable is reported even
	// when an earlier statement is already false.
	all := true
	for _, w := range p.When {
		m := whenRE.FindStringSubmatch(w)
		if m == nil {
			return false, fmt.Errorf("when %q: want VAR = value or VAR != value", w)
		}
		v, ok := env(m[1])
		if !ok {
			return false, fmt.Errorf("when %q: %s is not set (set it, or change the condition)", w, m[1])
		}
		if (m[2] == "=") != (v == m[3]) {
			all = false
		}
	}
	return all, nil
}
