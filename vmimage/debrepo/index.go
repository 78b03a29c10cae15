package debrepo

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"pault.ag/go/debian/control"
	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// Package is one binary package as a Packages index describes it.
type Package struct {
	Name       string
	Version    version.Version
	Arch       string
	Filename   string // relative to the mirror root
	Size       int64
	SHA256     string
	Essential  bool
	Depends    *dependency.Dependency
	PreDepends *dependency.Dependency
	Provides   []string
}

// Index is a parsed Packages file: every version of every package, and
// which packages provide each virtual name.
type Index struct {
	byName   map[string][]*Package
	provides map[string][]*Package
}

// ParseIndex reads an uncompressed Packages file.
func ParseIndex(r io.Reader) (*Index, error) {
	entries, err := control.ParseBinaryIndex(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("parse Packages: %w", err)
	}
	idx := &Index{byName: map[string][]*Package{}, provides: map[string][]*Package{}}
	for i := range entries {
		p, err := newPackage(&entries[i])
		if err != nil {
			return nil, err
		}
		idx.Add(p)
	}
	return idx, nil
}

// Add puts p in the index.
func (idx *Index) Add(p *Package) {
	idx.byName[p.Name] = append(idx.byName[p.Name], p)
	for _, v := range p.Provides {
		idx.provides[v] = append(idx.provides[v], p)
	}
}

// Newest returns the highest version of the package called name, or nil.
func (idx *Index) Newest(name string) *Package {
	var best *Package
	for _, p := range idx.byName[name] {
		if best == nil || version.Compare(p.Version, best.Version) > 0 {
			best = p
		}
	}
	return best
}

// Essential returns the newest version of every package marked Essential.
func (idx *Index) Essential() []*Package {
	var out []*Package
	for name := range idx.byName {
		if p := idx.Newest(name); p.Essential {
			out = append(out, p)
		}
	}
	return out
}

func newPackage(e *control.BinaryIndex) (*Package, error) {
	p := &Package{
		Name:      e.Package,
		Version:   e.Version,
		Arch:      e.Architecture.String(),
		Filename:  e.Filename,
		Size:      int64(e.Size),
		SHA256:    strings.ToLower(e.SHA256),
		Essential: e.Paragraph.Values["Essential"] == "yes",
	}
	var err error
	if p.Depends, err = parseRelations(e, "Depends"); err != nil {
		return nil, err
	}
	if p.PreDepends, err = parseRelations(e, "Pre-Depends"); err != nil {
		return nil, err
	}
	provides, err := parseRelations(e, "Provides")
	if err != nil {
		return nil, err
	}
	for _, poss := range provides.GetAllPossibilities() {
		p.Provides = append(p.Provides, poss.Name)
	}
	return p, nil
}

func parseRelations(e *control.BinaryIndex, field string) (*dependency.Dependency, error) {
	v := e.Paragraph.Values[field]
	if v == "" {
		return &dependency.Dependency{}, nil
	}
	d, err := dependency.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("package %s: %s: %w", e.Package, field, err)
	}
	return d, nil
}
