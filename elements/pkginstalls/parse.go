// Package pkginstalls reads the package-installs.yaml and .json files of
// elements and squashes them, as DIB's package-installs-squash does, into
// the per-phase install and uninstall lists of package-installs.json.
package pkginstalls

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Entry is one package of a file with its parameter sets. A package with
// no parameters gets one empty set: install it in install.d.
type Entry struct {
	Package string
	Params  []Param
}

// Param is one set of conditions under which a package is handled.
type Param struct {
	Phase         string   // default install.d
	Uninstall     bool     // remove it at the end of the phase instead
	BuildOnly     bool     // install it, and remove it at the end of the phase
	InstallType   string   // only for elements of this install type
	Arch          []string // only on these architectures
	NotArch       []string // never on these
	PythonVersion string   // only when DIB_PYTHON_VERSION is this
	When          []string // "VAR = v" or "VAR != v"; all must hold
}

var knownKeys = []string{"phase", "uninstall", "build-only", "installtype", "arch", "not-arch", "dib_python_version", "when"}

// Parse reads a package-installs file. YAML is a superset of JSON, so one
// parser reads both. An empty or null file lists no packages. Unknown keys
// are reported as warnings, not errors, as DIB ignores them.
func Parse(data []byte) (entries []Entry, warnings []string, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("does not parse: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil, nil
	}
	root := doc.Content[0]
	if isNull(root) {
		return nil, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("line %d: want a mapping of package names, got %s", root.Line, kindName(root))
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return nil, nil, fmt.Errorf("line %d: a package name must be a non-empty string", k.Line)
		}
		e := Entry{Package: k.Value}
		params, warn, err := parseParams(v)
		if err != nil {
			return nil, nil, fmt.Errorf("package %s: %w", k.Value, err)
		}
		for _, w := range warn {
			warnings = append(warnings, fmt.Sprintf("package %s: %s", k.Value, w))
		}
		e.Params = params
		entries = append(entries, e)
	}
	return entries, warnings, nil
}

func parseParams(v *yaml.Node) ([]Param, []string, error) {
	switch {
	case isNull(v) || (v.Kind == yaml.ScalarNode && v.Value == ""):
		return []Param{{Phase: "install.d"}}, nil, nil
	case v.Kind == yaml.MappingNode:
		p, warn, err := parseParam(v)
		return []Param{p}, warn, err
	case v.Kind == yaml.SequenceNode:
		if len(v.Content) == 0 {
			return []Param{{Phase: "install.d"}}, nil, nil
		}
		var out []Param
		var warnings []string
		for _, item := range v.Content {
			if item.Kind != yaml.MappingNode {
				return nil, nil, fmt.Errorf("line %d: list items must be mappings, got %s", item.Line, kindName(item))
			}
			p, warn, err := parseParam(item)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, p)
			warnings = append(warnings, warn...)
		}
		return out, warnings, nil
	}
	return nil, nil, fmt.Errorf("line %d: want nothing, a mapping or a list of mappings, got %s", v.Line, kindName(v))
}

func parseParam(m *yaml.Node) (Param, []string, error) {
	p := Param{Phase: "install.d"}
	var warnings []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		var err error
		switch k.Value {
		case "phase":
			p.Phase, err = scalar(v)
			if err == nil && p.Phase == "" {
				err = errors.New("is empty")
			}
		case "uninstall":
			p.Uninstall, err = boolean(v)
		case "build-only":
			p.BuildOnly, err = boolean(v)
		case "installtype":
			p.InstallType, err = scalar(v)
		case "arch":
			p.Arch, err = list(v)
		case "not-arch":
			p.NotArch, err = list(v)
		case "dib_python_version":
			p.PythonVersion, err = scalar(v)
		case "when":
			p.When, err = whenList(v)
		default:
			warnings = append(warnings, fmt.Sprintf("line %d: unknown key %q ignored (known: %s)", k.Line, k.Value, strings.Join(knownKeys, ", ")))
		}
		if err != nil {
			return p, nil, fmt.Errorf("line %d: %s: %w", v.Line, k.Value, err)
		}
	}
	if len(p.Arch) > 0 && len(p.NotArch) > 0 {
		return p, nil, fmt.Errorf("line %d: arch and not-arch are both given: use one", m.Line)
	}
	return p, warnings, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "something else"
}

func scalar(n *yaml.Node) (string, error) {
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("want a single value, got %s", kindName(n))
	}
	return strings.TrimSpace(n.Value), nil
}

// boolean reads true/false as YAML does, and the strings DIB's examples
// use ('true', 'True', 1, yes).
func boolean(n *yaml.Node) (bool, error) {
	s, err := scalar(n)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0", "":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %q", s)
}

// list reads "a, b" or a YAML list. Items are trimmed (DIB does not trim,
// so "ppc64, ppc64le" never matched ppc64le there; its README means it to).
func list(n *yaml.Node) ([]string, error) {
	var items []string
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			s, err := scalar(c)
			if err != nil {
				return nil, err
			}
			items = append(items, s)
		}
	} else {
		s, err := scalar(n)
		if err != nil {
			return nil, err
		}
		items = strings.Split(s, ",")
	}
	var out []string
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out, nil
}

func whenList(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.SequenceNode {
		var out []string
		for _, c := range n.Content {
			s, err := scalar(c)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(n)
	if err != nil || s == "" {
		return nil, err
	}
	return []string{s}, nil
}
