package debrepo

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"pault.ag/go/debian/dependency"
)

// Resolve returns want and everything it needs through Depends and
// Pre-Depends, one version of each package, sorted by name.
//
// For an alternative (a | b) it keeps whichever is already chosen, else
// the first that exists. A virtual name is satisfied by a real package of
// that name first, then by its providers. Recommends are not followed, as
// with apt-get --no-install-recommends.
//
// A dependency on a package whose name matches one of the without patterns
// (path.Match syntax) counts as met and pulls nothing in: for packages that
// only commands never run need.
func (idx *Index) Resolve(want, without []string) ([]*Package, error) {
	return idx.ResolveOnto(nil, want, without)
}

// ResolveOnto is Resolve for packages added to a set already installed:
// the packages of have meet any dependency they satisfy, and are neither
// followed nor returned. The result is what want adds to have. A package
// of have is taken as it is, even where the index holds another version.
func (idx *Index) ResolveOnto(have []*Package, want, without []string) ([]*Package, error) {
	r := resolver{idx: idx, chosen: map[string]*Package{}, via: map[string]string{}, without: without}
	for _, p := range have {
		r.chosen[p.Name] = p
	}
	for _, name := range want {
		if r.has(name) {
			continue // installed already, or by a provider of a virtual name
		}
		p := idx.Newest(name)
		if p == nil {
			if prov := idx.provides[name]; len(prov) > 0 {
				p = prov[0]
			} else {
				return nil, fmt.Errorf("package %s is not in the index", name)
			}
		}
		r.add(p, "")
	}
	for len(r.queue) > 0 {
		p := r.queue[0]
		r.queue = r.queue[1:]
		for _, dep := range []*dependency.Dependency{p.PreDepends, p.Depends} {
			if err := r.satisfy(p, dep); err != nil {
				return nil, err
			}
		}
	}
	installed := make(map[string]bool, len(have))
	for _, p := range have {
		installed[p.Name] = true
	}
	out := make([]*Package, 0, len(r.chosen)-len(installed))
	for _, p := range r.chosen {
		if !installed[p.Name] {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type resolver struct {
	idx     *Index
	chosen  map[string]*Package
	via     map[string]string // package -> the package that pulled it in
	queue   []*Package
	without []string
}

func (r *resolver) add(p *Package, parent string) {
	if _, ok := r.chosen[p.Name]; ok {
		return
	}
	r.chosen[p.Name] = p
	r.via[p.Name] = parent
	r.queue = append(r.queue, p)
}

func (r *resolver) satisfy(p *Package, dep *dependency.Dependency) error {
	for _, rel := range dep.Relations {
		if r.satisfied(rel) {
			continue
		}
		pick := r.pick(rel)
		if pick == nil {
			return fmt.Errorf("cannot satisfy %q, needed by %s", relationString(rel), r.chain(p.Name))
		}
		if have, ok := r.chosen[pick.Name]; ok {
			// Only an installed package can be chosen and still fail a
			// relation: it is kept, not upgraded.
			return fmt.Errorf("cannot satisfy %q, needed by %s: %s %s is installed", relationString(rel), r.chain(p.Name), have.Name, have.Version)
		}
		r.add(pick, p.Name)
	}
	return nil
}

// satisfied reports whether a package already chosen meets rel.
func (r *resolver) satisfied(rel dependency.Relation) bool {
	for _, poss := range rel.Possibilities {
		if r.left(poss.Name) {
			return true
		}
		if p, ok := r.chosen[poss.Name]; ok && versionOK(p, poss) {
			return true
		}
		if poss.Version == nil {
			for _, prov := range r.idx.provides[poss.Name] {
				if _, ok := r.chosen[prov.Name]; ok {
					return true
				}
			}
		}
	}
	return false
}

// has reports whether a package called name, or one providing it, is
// chosen.
func (r *resolver) has(name string) bool {
	if _, ok := r.chosen[name]; ok {
		return true
	}
	for _, prov := range r.idx.provides[name] {
		if _, ok := r.chosen[prov.Name]; ok {
			return true
		}
	}
	return false
}

// pick chooses a package for an unmet relation.
func (r *resolver) pick(rel dependency.Relation) *Package {
	for _, poss := range rel.Possibilities {
		if p := r.idx.Newest(poss.Name); p != nil && versionOK(p, poss) {
			return p
		}
	}
	for _, poss := range rel.Possibilities {
		if poss.Version != nil {
			continue
		}
		if prov := r.idx.provides[poss.Name]; len(prov) > 0 {
			return prov[0]
		}
	}
	return nil
}

// left reports whether name is one of the packages left out.
func (r *resolver) left(name string) bool {
	for _, w := range r.without {
		if ok, _ := path.Match(w, name); ok {
			return true
		}
	}
	return false
}

func versionOK(p *Package, poss dependency.Possibility) bool {
	return poss.Version == nil || poss.Version.SatisfiedBy(p.Version)
}

func (r *resolver) chain(name string) string {
	var names []string
	for n := name; n != ""; n = r.via[n] {
		names = append(names, n)
	}
	return strings.Join(names, " <- ")
}

func relationString(rel dependency.Relation) string {
	var parts []string
	for _, p := range rel.Possibilities {
		s := p.Name
		if p.Version != nil {
			s += fmt.Sprintf(" (%s %s)", p.Version.Operator, p.Version.Number)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " | ")
}
