// Package pkgmap maps an element's generic package names to a
// distribution's, from the element's pkg-map file, as DIB's pkg-map does.
package pkgmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Map is a parsed pkg-map file. A nil value (JSON null or "") means the
// package is not installed on that distribution.
type Map struct {
	Release map[string]map[string]map[string]*string `json:"release"` // distro -> release -> name -> package
	Distro  map[string]map[string]*string            `json:"distro"`  // distro -> name -> package
	Family  map[string]map[string]*string            `json:"family"`  // family -> name -> package
	Default map[string]*string                       `json:"default"` // name -> package
}

// Parse reads a pkg-map file (JSON). Other top-level keys are ignored,
// as DIB ignores them.
func Parse(data []byte) (*Map, error) {
	var m Map
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a valid pkg-map: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a valid pkg-map: trailing data after the JSON object")
	}
	return &m, nil
}

// Family is the distribution family DIB groups distro under, or "":
// DIB master's names, and centos7 and rhel7, which DIB 3.13's centos7
// and rhel7 elements set.
func Family(distro string) string {
	switch distro {
	case "almalinux", "centos", "centos7", "fedora", "openeuler", "rhel", "rhel7", "rocky":
		return "redhat"
	case "debian", "ubuntu":
		return "debian"
	case "opensuse":
		return "suse"
	case "gentoo":
		return "gentoo"
	}
	return ""
}

// majorRelease is how DIB keys releases: "8-stream" is "8".
func majorRelease(release string) string {
	if release == "8-stream" {
		return "8"
	}
	return release
}

// table layers the sections, most specific last so it wins: default,
// then family, then distro, then release (which applies only under its
// distro).
func (m *Map) table(distro, release string) map[string]*string {
	t := map[string]*string{}
	for _, layer := range []map[string]*string{
		m.Default,
		m.Family[Family(distro)],
		m.Distro[distro],
		m.Release[distro][majorRelease(release)],
	} {
		for k, v := range layer {
			t[k] = v
		}
	}
	return t
}

// MissingError is a name the map has no entry for.
type MissingError struct{ Name string }

func (e *MissingError) Error() string { return "no mapping for package " + e.Name }

// Resolve maps names for distro and release. Each result is one output
// line (a mapping may name several packages, space separated). A name
// mapped to nothing is dropped. A name the map lacks is an error unless
// missingOK, when it passes through unchanged.
func (m *Map) Resolve(distro, release string, names []string, missingOK bool) ([]string, error) {
	t := m.table(distro, release)
	var out []string
	for _, n := range names {
		v, ok := t[n]
		switch {
		case !ok && missingOK:
			out = append(out, n)
		case !ok:
			return out, &MissingError{Name: n}
		case v != nil && *v != "":
			out = append(out, *v)
		}
	}
	return out, nil
}
