package debootstrap

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/dibvm/dibvm/vmimage/debrepo/deb822"
)

// stanza is what debootstrap's pkgdetails reads of one entry of a
// Packages file.
type stanza struct {
	Package, Version, Architecture, Filename, SHA256, Size, Priority string
	// Depends and Pre-Depends as written.
	Depends []string
}

// parsePackages reads a Packages file as debootstrap's pkgdetails does:
// a field is a line that starts with its name and a colon (grep
// '^Package:' and friends), its value the rest with leading blanks
// trimmed; continuation lines belong to no field it reads, and a line
// that is no field is passed over. A paragraph without a Package field
// is no entry.
func parsePackages(data []byte) ([]stanza, error) {
	var out []stanza
	var cur stanza
	have, paragraph := false, 0
	var err error
	for f, ferr := range deb822.Fields(bytes.NewReader(data)) {
		if ferr != nil {
			if _, malformed := ferr.(*deb822.SyntaxError); malformed {
				continue
			}
			err = ferr
			break
		}
		if f.Paragraph != paragraph {
			if have {
				out = append(out, cur)
			}
			cur, have, paragraph = stanza{}, false, f.Paragraph
		}
		if f.Text != "" && cur.set(f.Name, f.Value) {
			have = true
		}
	}
	if have {
		out = append(out, cur)
	}
	return out, err
}

// set records the field called name with value as written after its
// colon, and tells whether it was the Package field.
func (s *stanza) set(name, value string) bool {
	v := strings.TrimLeft(value, " \t")
	switch name {
	case "Package":
		s.Package = v
		return true
	case "Version":
		s.Version = v
	case "Architecture":
		s.Architecture = v
	case "Filename":
		s.Filename = v
	case "SHA256":
		s.SHA256 = v
	case "Size":
		s.Size = v
	case "Priority":
		s.Priority = v
	case "Depends", "Pre-Depends":
		// pkgdetails matches "^Depends: (.*)$": one space.
		if v, ok := strings.CutPrefix(value, " "); ok {
			s.Depends = append(s.Depends, v)
		}
	}
	return false
}

var (
	commaSplit = regexp.MustCompile(`\s*,\s*`)
	altStrip   = regexp.MustCompile(`\s*[|].*$`)
	verStrip   = regexp.MustCompile(`\s*[(].*[)]\s*`)
)

// depNames are the packages a Depends or Pre-Depends value names, as
// pkgdetails GETDEPS reads it: the first of alternatives, without version
// or architecture qualifier. debootstrap resolves no Provides.
func depNames(value string) []string {
	var out []string
	parts := commaSplit.Split(value, -1)
	// Perl's split drops trailing empty fields.
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	for _, d := range parts {
		d = altStrip.ReplaceAllString(d, "")
		d = verStrip.ReplaceAllString(d, "")
		if i := strings.IndexByte(d, ':'); i >= 0 {
			d = d[:i]
		}
		out = append(out, d)
	}
	return out
}

// component is one component's Packages file, parsed.
type component struct {
	Name     string
	Data     []byte // the file as the guest's tree gets it
	Stanzas  []stanza
	byName   map[string][]int
	lastName map[string]int
}

func newComponent(name string, data []byte) (*component, error) {
	st, err := parsePackages(data)
	if err != nil {
		return nil, fmt.Errorf("%s Packages: %w", name, err)
	}
	c := &component{Name: name, Data: data, Stanzas: st, byName: map[string][]int{}, lastName: map[string]int{}}
	for i, s := range st {
		c.byName[s.Package] = append(c.byName[s.Package], i)
		c.lastName[s.Package] = i
	}
	return c, nil
}

// selection is debootstrap's choice of packages for a suite.
type selection struct {
	Required, Base []string
}

// codenamesNotMerged are the releases that debootstrap installs without
// merging /usr: it knows them by the Release's Codename, which it does not
// read when it unpacks a tarball.
var codenamesNotMerged = regexp.MustCompile(`^(etch.*|lenny|squeeze|wheezy|jessie.*|stretch)$`)

// codenamesBeforeBookworm are the releases for which debootstrap leaves
// the usrmerge package alone.
var codenamesBeforeBookworm = regexp.MustCompile(`^(etch.*|lenny|squeeze|wheezy|jessie.*|stretch|buster|bullseye)$`)

// choose is work_out_debs and resolve_deps of debootstrap's debian-common
// script for the minbase variant: the packages of Priority required, and
// apt (with ca-certificates from an https mirror), each set closed over
// Depends and Pre-Depends; base less what required has.
func choose(comps []*component, codename string, https bool) selection {
	var required []string
	for _, c := range comps {
		for _, s := range c.Stanzas {
			if s.Priority == "required" {
				required = append(required, s.Package)
			}
		}
	}
	base := []string{"apt"}
	if https {
		base = append(base, "ca-certificates")
	}
	var excludeDep []string
	switch {
	case codenamesBeforeBookworm.MatchString(codename):
	case codename == "bookworm":
		required = append(required, "usr-is-merged")
		excludeDep = []string{"usrmerge"}
	default:
		excludeDep = []string{"usrmerge"}
	}
	req := resolve(comps, sortUniq(required), excludeDep)
	b := without(resolve(comps, sortUniq(base), excludeDep), req)
	return selection{Required: req, Base: b}
}

// resolve is debootstrap's resolve_deps.
func resolve(comps []*component, pkgs, excludeDep []string) []string {
	all := slices.Clone(pkgs)
	for len(pkgs) > 0 {
		var deps []string
		for _, c := range comps {
			for _, p := range pkgs {
				for _, i := range c.byName[p] {
					for _, d := range c.Stanzas[i].Depends {
						deps = append(deps, depNames(d)...)
					}
				}
			}
		}
		deps = without(deps, excludeDep)
		var real []string
		for _, p := range sortUniq(append(pkgs, deps...)) {
			for _, c := range comps {
				if _, ok := c.lastName[p]; ok {
					real = append(real, p)
				}
			}
		}
		all2 := sortUniq(append(real, all...))
		pkgs = without(all2, all)
		all = all2
	}
	return all
}

// deb is one package to download, as debootstrap's debpaths and deburis
// name it.
type deb struct {
	stanza
	Dest string // /var/cache/apt/archives/<name>_<version>_<arch>.deb
}

// locate is download_release's walk: each component in turn offers the
// packages still wanted (the last entry of a name wins), in byte order of
// name; what none has is an error.
func locate(comps []*component, names []string) ([]deb, error) {
	left := sortUniq(names)
	var out []deb
	for _, c := range comps {
		var next []string
		for _, n := range left {
			i, ok := c.lastName[n]
			if !ok {
				next = append(next, n)
				continue
			}
			s := c.Stanzas[i]
			// apt_dest: the first ':' (of an epoch) becomes %3a.
			dest := strings.Replace("/var/cache/apt/archives/"+s.Package+"_"+s.Version+"_"+s.Architecture+".deb", ":", "%3a", 1)
			out = append(out, deb{stanza: s, Dest: dest})
		}
		left = next
	}
	if len(left) > 0 {
		return nil, fmt.Errorf("couldn't find these debs: %s", strings.Join(left, " "))
	}
	return out, nil
}

func sortUniq(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// without is s less what drop has, in s's order.
func without(s, drop []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}
