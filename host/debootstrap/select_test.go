package debootstrap

import (
	"slices"
	"strings"
	"testing"
)

// main and contrib of a small suite, in the shapes debootstrap's
// pkgdetails has to read: alternatives, versions, architecture
// qualifiers, Pre-Depends, a virtual package, a package in two components
// and twice in one file, continuation lines that look like fields.
const mainPackages = `Package: base-files
Version: 13
Architecture: amd64
Priority: required
Depends: libc6 (>= 2.36), awk | mawk
Filename: pool/main/b/base-files/base-files_13_amd64.deb
Size: 10
SHA256: aa
Description: base
 Depends: not-a-field

Package: libc6
Version: 2.41-1
Architecture: amd64
Priority: optional
Pre-Depends: libgcc-s1:any
Depends: gcc-base (= 14)
Filename: pool/main/g/glibc/libc6_2.41-1_amd64.deb
Size: 20
SHA256: bb

Package: libgcc-s1
Version: 14
Architecture: amd64
Priority: optional
Filename: pool/main/g/gcc/libgcc-s1_14_amd64.deb
Size: 30
SHA256: cc

Package: gcc-base
Version: 1:14
Architecture: amd64
Priority: optional
Filename: pool/main/g/gcc/gcc-base_14_amd64.deb
Size: 40
SHA256: dd

Package: mawk
Version: 1.3
Architecture: amd64
Priority: required
Filename: pool/main/m/mawk/mawk_1.3_amd64.deb
Size: 50
SHA256: ee

Package: apt
Version: 3.0
Architecture: amd64
Priority: important
Depends: debian-keyring-virtual | debian-archive-keyring, libc6, usrmerge
Filename: pool/main/a/apt/apt_3.0_amd64.deb
Size: 60
SHA256: ff

Package: usrmerge
Version: 40
Architecture: all
Priority: optional
Filename: pool/main/u/usrmerge/usrmerge_40_all.deb
Size: 70
SHA256: 11

Package: ca-certificates
Version: 2025
Architecture: all
Priority: optional
Filename: pool/main/c/ca-certificates/ca-certificates_2025_all.deb
Size: 80
SHA256: 22

Package: usr-is-merged
Version: 40
Architecture: all
Priority: optional
Filename: pool/main/u/usrmerge/usr-is-merged_40_all.deb
Size: 90
SHA256: 33

Package: mawk
Version: 1.4
Architecture: amd64
Priority: required
Filename: pool/main/m/mawk/mawk_1.4_amd64.deb
Size: 55
SHA256: e4
`

const contribPackages = `Package: debian-archive-keyring
Version: 2025.1
Architecture: all
Priority: optional
Filename: pool/contrib/d/debian-archive-keyring/debian-archive-keyring_2025.1_all.deb
Size: 100
SHA256: 44

Package: mawk
Version: 9
Architecture: amd64
Priority: required
Filename: pool/contrib/m/mawk/mawk_9_amd64.deb
Size: 99
SHA256: 99
`

func testComponents(t *testing.T) []*component {
	t.Helper()
	var out []*component
	for _, c := range []struct{ name, data string }{{"main", mainPackages}, {"contrib", contribPackages}} {
		comp, err := newComponent(c.name, []byte(c.data))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, comp)
	}
	return out
}

func TestDepNames(t *testing.T) {
	for in, want := range map[string]string{
		"libc6 (>= 2.36), awk | mawk":        "libc6 awk",
		"libgcc-s1:any":                      "libgcc-s1",
		"a(>=1),b ( << 2 ) , c:amd64 (= 3)":  "a b c",
		"x | y (>= 1), z,":                   "x z",
		"perl-base (>= 5.40.0-6), dpkg:any ": "perl-base dpkg",
	} {
		if got := strings.Join(depNames(in), " "); got != want {
			t.Errorf("depNames(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChoose(t *testing.T) {
	comps := testComponents(t)
	for _, tc := range []struct {
		codename       string
		https          bool
		required, base string
	}{
		// trixie and later: usrmerge is never pulled in; awk, a first
		// alternative that is no package, is dropped, and so is a
		// virtual first alternative (debootstrap reads no Provides).
		{"trixie", false, "base-files gcc-base libc6 libgcc-s1 mawk", "apt"},
		// bookworm: usr-is-merged is required as well.
		{"bookworm", false, "base-files gcc-base libc6 libgcc-s1 mawk usr-is-merged", "apt"},
		// bullseye: usrmerge is an ordinary dependency.
		{"bullseye", false, "base-files gcc-base libc6 libgcc-s1 mawk", "apt usrmerge"},
		// an https mirror needs ca-certificates.
		{"trixie", true, "base-files gcc-base libc6 libgcc-s1 mawk", "apt ca-certificates"},
	} {
		sel := choose(comps, tc.codename, tc.https)
		if got := strings.Join(sel.Required, " "); got != tc.required {
			t.Errorf("%s https=%v: required %q, want %q", tc.codename, tc.https, got, tc.required)
		}
		if got := strings.Join(sel.Base, " "); got != tc.base {
			t.Errorf("%s https=%v: base %q, want %q", tc.codename, tc.https, got, tc.base)
		}
	}
}

func TestLocate(t *testing.T) {
	comps := testComponents(t)
	debs, err := locate(comps, []string{"mawk", "gcc-base", "debian-archive-keyring", "apt", "mawk"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range debs {
		got = append(got, d.Package+" "+d.Dest)
	}
	// main's packages first, by name; the last mawk of main, not
	// contrib's; an epoch's colon escaped.
	want := []string{
		"apt /var/cache/apt/archives/apt_3.0_amd64.deb",
		"gcc-base /var/cache/apt/archives/gcc-base_1%3a14_amd64.deb",
		"mawk /var/cache/apt/archives/mawk_1.4_amd64.deb",
		"debian-archive-keyring /var/cache/apt/archives/debian-archive-keyring_2025.1_all.deb",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := locate(comps, []string{"apt", "nosuch"}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("a missing package: %v", err)
	}
}
