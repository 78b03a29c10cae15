package rpmstandin

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Package describes one rpm of a stand-in repository.
type Package struct {
	Name    string
	Version string
	Release string
	// Arch is an rpm architecture: "x86_64", "aarch64" or "noarch".
	Arch    string
	Summary string
	// Tree, if set, is a directory whose contents become the package's
	// files, under the same paths in the target. Modes come from the
	// tree, owners from Attrs (root otherwise).
	Tree string
	// Attrs overrides the mode or owner of Tree's entries, by absolute
	// path in the target: what an unprivileged staging tree cannot hold.
	Attrs map[string]Attr
	// Files are generated entries, added to Tree's.
	Files    []File
	Requires []string
	// RequiresPre are needed before the package's files go in (its
	// files' owners are named in another package's /etc/passwd).
	RequiresPre []string
	Provides    []string
	// Post is the body of a %post scriptlet (/bin/sh), if any.
	Post string
	// Posttrans is the body of a %posttrans scriptlet, run once the
	// whole transaction is in.
	Posttrans string
}

// Attr is the mode and owner an entry gets in the package.
type Attr struct {
	Mode        fs.FileMode // permission, setuid, setgid and sticky bits
	User, Group string      // "" is root
}

// File is one generated entry of a package.
type File struct {
	Path string // absolute, in the target
	// Mode holds the permission bits and fs.ModeDir or fs.ModeSymlink
	// for a directory or a symbolic link.
	Mode   fs.FileMode
	Data   []byte
	Target string // a symbolic link's target
	// Config marks a file %config(noreplace): a changed copy in the
	// target survives an upgrade.
	Config      bool
	User, Group string
}

// NEVRA is the package's full name, as rpm files are named.
func (p *Package) NEVRA() string {
	return fmt.Sprintf("%s-%s-%s.%s", p.Name, p.Version, p.Release, p.Arch)
}

// entry is one line of a package's %files.
type entry struct {
	path   string
	mode   fs.FileMode
	user   string
	group  string
	config bool
}

// specFile is the spec rpmbuild makes p from, its files already staged
// in a build root; entries are what %files lists.
func specFile(p *Package, entries []entry) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "Name: %s\nVersion: %s\nRelease: %s\nSummary: %s\nLicense: various\n",
		p.Name, p.Version, p.Release, oneLine(p.Summary, p.Name))
	fmt.Fprintf(&b, "BuildArch: %s\n", p.Arch)
	// The payload's dependencies are what the packages say, not what
	// rpmbuild's generators would find in Debian's binaries.
	b.WriteString("AutoReqProv: no\n")
	for _, r := range p.RequiresPre {
		fmt.Fprintf(&b, "Requires(pre): %s\n", r)
	}
	for _, r := range p.Requires {
		fmt.Fprintf(&b, "Requires: %s\n", r)
	}
	for _, r := range p.Provides {
		fmt.Fprintf(&b, "Provides: %s\n", r)
	}
	fmt.Fprintf(&b, "\n%%description\n%s\n", oneLine(p.Summary, p.Name))
	if p.Post != "" {
		fmt.Fprintf(&b, "\n%%post\n%s\n", strings.ReplaceAll(p.Post, "%", "%%"))
	}
	if p.Posttrans != "" {
		fmt.Fprintf(&b, "\n%%posttrans\n%s\n", strings.ReplaceAll(p.Posttrans, "%", "%%"))
	}
	b.WriteString("\n%files\n")
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	for _, e := range entries {
		name, err := filesName(e.path)
		if err != nil {
			return "", fmt.Errorf("package %s: %w", p.Name, err)
		}
		var kind string
		switch {
		case e.mode.IsDir():
			kind = "%dir "
		case e.config:
			kind = "%config(noreplace) "
		}
		perm := "-"
		if e.mode&fs.ModeSymlink == 0 {
			perm = fmt.Sprintf("%04o", unixPerm(e.mode))
		}
		fmt.Fprintf(&b, "%%attr(%s,%s,%s) %s%s\n", perm, orRoot(e.user), orRoot(e.group), kind, name)
	}
	return b.String(), nil
}

// filesName quotes a path for %files, which expands macros and globs
// in it: glob characters are put in brackets, and names a spec cannot
// spell (%, quotes, backslashes, control characters) are refused.
func filesName(p string) (string, error) {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return "", fmt.Errorf("%q: not a clean absolute path", p)
	}
	var b strings.Builder
	for _, r := range p {
		switch {
		case r < 0x20 || r == 0x7f || r == '%' || r == '"' || r == '\\':
			return "", fmt.Errorf("%q: %%files cannot name a path with %q", p, r)
		case strings.ContainsRune("*?[]{}", r):
			b.WriteString("[" + string(r) + "]")
		default:
			b.WriteRune(r)
		}
	}
	return `"` + b.String() + `"`, nil
}

func unixPerm(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

func orRoot(s string) string {
	if s == "" {
		return "root"
	}
	return s
}

func oneLine(s, fallback string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", " "))
	if s == "" {
		return fallback
	}
	return strings.ReplaceAll(s, "%", "%%")
}
