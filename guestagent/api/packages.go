package api

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A Package is one package installed in the image, as its package
// database (dpkg's or rpm's) names it. The guest puts the list on the
// output disk (Result.PackagesOffset); the host joins it with what its
// egress proxy served into the build's lock file.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"architecture"`
}

// Bounds on the package list the host takes: Debian's whole archive is
// some 65000 source packages; an image holds far fewer.
const (
	MaxPackages    = 20000
	MaxPackageList = 4 << 20
)

// packageField is what dpkg and rpm allow in a name, a version (with an
// epoch and, for rpm, a release) and an architecture: no space, no
// control character, nothing a terminal or a shell reads.
var packageField = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~^:_-]{0,199}$`)

// Valid reports whether the host takes p: a tree's database may hold
// anything a hook wrote there.
func (p Package) Valid() bool {
	return packageField.MatchString(p.Name) && packageField.MatchString(p.Version) && packageField.MatchString(p.Arch)
}

// FormatPackages is the list as the guest writes it: a line a package,
// its name, version and architecture separated by tabs, in order, at
// most MaxPackages of them. It leaves out what is not Valid, and says
// how many it left out.
func FormatPackages(pkgs []Package) (list []byte, left int) {
	pkgs = slices.Clone(pkgs)
	SortPackages(pkgs)
	var b bytes.Buffer
	n := 0
	for _, p := range pkgs {
		if !p.Valid() || n == MaxPackages {
			left++
			continue
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\n", p.Name, p.Version, p.Arch)
		n++
	}
	return b.Bytes(), left
}

// ParsePackages reads a list FormatPackages wrote, refusing anything
// else: it comes from the guest.
func ParsePackages(list []byte) ([]Package, error) {
	if len(list) > MaxPackageList {
		return nil, fmt.Errorf("the package list is %d bytes, more than %d", len(list), MaxPackageList)
	}
	var pkgs []Package
	for i, line := range strings.SplitAfter(string(list), "\n") {
		if line == "" {
			break
		}
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 3 || !strings.HasSuffix(line, "\n") {
			return nil, fmt.Errorf("line %d of the package list is not name, version and architecture", i+1)
		}
		p := Package{Name: f[0], Version: f[1], Arch: f[2]}
		if !p.Valid() {
			return nil, fmt.Errorf("line %d of the package list has a field dpkg and rpm do not allow", i+1)
		}
		if len(pkgs) == MaxPackages {
			return nil, fmt.Errorf("the package list has more than %d packages", MaxPackages)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// SortPackages puts pkgs in order of name, architecture and version.
func SortPackages(pkgs []Package) {
	slices.SortFunc(pkgs, func(a, b Package) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Arch, b.Arch), strings.Compare(a.Version, b.Version))
	})
}
