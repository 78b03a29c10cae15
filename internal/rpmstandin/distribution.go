package rpmstandin

import (
	"context"
	"fmt"
)

// A distribution is what a stand-in repository says of the distribution
// it stands in for; the rest of its packages are the same for every one.
type distribution struct {
	name      string // in the packages' summaries: "CentOS Stream"
	dist      string // the release tag of its packages: "el9", "fc41"
	efiVendor string // the ESP's directory of its loaders: EFI/<efiVendor>
	// requested are the names DIB's elements ask for on it.
	requested []requested
	// release are the packages that say which distribution and release
	// this is, with its repositories and keys, each made by base.
	release func(base func(name, version string) Package) []Package
}

// buildStandIn builds in dir the signed repository of d: the packages
// every rpm root starts from (filesystem, setup, basesystem), d's
// release packages, a small package for each name d's elements ask for,
// and the userland as one package. What a named package ships is its
// own, as on the real distribution: Debian's copy (base-files'
// os-release) leaves the userland, as does what says it is Debian.
func buildStandIn(ctx context.Context, d distribution, u *Userland, debArch, work string, key *Key, dir string) (*Repo, error) {
	pkgs, err := d.packages(u, debArch)
	if err != nil {
		return nil, err
	}
	if err := u.drop([]File{{Path: "/etc/debian_version"}}); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if p.Name != UserlandPackage {
			if err := u.drop(p.Files); err != nil {
				return nil, err
			}
		}
	}
	return Build(ctx, dir, work, key, pkgs)
}

// packages are d's stand-in packages, the userland last.
func (d distribution) packages(u *Userland, debArch string) ([]Package, error) {
	accounts, err := u.Accounts()
	if err != nil {
		return nil, err
	}
	base := func(name, version string) Package {
		return Package{Name: name, Version: version, Release: "1." + d.dist, Arch: "noarch",
			Summary: name + " of dibvm's " + d.name + " stand-in"}
	}
	filesystem := base("filesystem", "3.16")
	filesystem.Files = filesystemEntries()
	setup := base("setup", "2.13.7")
	setup.Files = append(accounts, File{Path: "/etc/shells", Mode: 0o644, Config: true,
		Data: []byte("/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n")})
	basesystem := base("basesystem", "11")
	basesystem.Requires = []string{"filesystem", "setup"}
	pkgs := append([]Package{filesystem, setup, basesystem}, d.release(base)...)
	acts := behaviours(d.efiVendor)
	for _, r := range d.requested {
		p := base(r.name, "1")
		p.Requires = []string{UserlandPackage}
		for _, name := range r.provides {
			p.Provides = append(p.Provides, name+" = 1-1."+d.dist)
		}
		p.Files = []File{{Path: "/usr/share/rpm-standin/" + r.name, Mode: 0o644,
			Data: []byte(r.name + ": a stand-in; the files are " + UserlandPackage + "'s.\nAsked for by " + r.from + ".\n")}}
		if b, ok := acts[r.name]; ok {
			p.Files = append(p.Files, b.files...)
			p.Requires = append(p.Requires, b.requires...)
			p.Post, p.Posttrans = b.post, b.posttrans
		}
		pkgs = append(pkgs, p)
	}
	pkgs = append(pkgs, Package{
		Name: UserlandPackage, Version: "1", Release: "1." + d.dist, Arch: RPMArch(debArch),
		Summary:     fmt.Sprintf("Debian's userland (%d packages) for dibvm's %s stand-in", len(u.Debs), d.name),
		Tree:        u.Tree,
		Attrs:       u.Attrs,
		RequiresPre: []string{"filesystem", "setup"},
		// Fedora's bash provides /bin/sh: a dependency on it names no
		// path a package has, under merged /usr.
		Provides: []string{"/bin/sh", "/bin/bash"},
		Post:     "/usr/sbin/ldconfig || :",
	})
	return pkgs, nil
}
