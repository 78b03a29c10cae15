package debrepo

import (
	"strings"
	"testing"
)

const testIndex = `Package: app
Version: 1.0
Architecture: amd64
Depends: libc6 (>= 2.36), mail-transport-agent | postfix, python3:any, old | newer
Pre-Depends: dpkg
Filename: pool/app.deb
Size: 1
SHA256: aa

Package: libc6
Version: 2.35
Architecture: amd64
Filename: pool/libc6-old.deb
Size: 1
SHA256: bb

Package: libc6
Version: 2.41
Architecture: amd64
Filename: pool/libc6.deb
Size: 1
SHA256: cc

Package: exim4
Version: 4
Architecture: amd64
Provides: mail-transport-agent
Filename: pool/exim4.deb
Size: 1
SHA256: dd

Package: python3
Version: 3.13
Architecture: amd64
Depends: libc6
Filename: pool/python3.deb
Size: 1
SHA256: ee

Package: dpkg
Version: 1.22
Architecture: amd64
Essential: yes
Filename: pool/dpkg.deb
Size: 1
SHA256: ff

Package: newer
Version: 1
Architecture: amd64
Filename: pool/newer.deb
Size: 1
SHA256: 11

Package: broken
Version: 1
Architecture: amd64
Depends: libc6 (>= 9)
Filename: pool/broken.deb
Size: 1
SHA256: 22
`

func names(pkgs []*Package) string {
	var n []string
	for _, p := range pkgs {
		n = append(n, p.Name+"="+p.Version.String())
	}
	return strings.Join(n, " ")
}

func TestResolve(t *testing.T) {
	idx, err := ParseIndex(strings.NewReader(testIndex))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		want    []string
		without []string
		got     string
		wantErr string
	}{
		// Virtual mail-transport-agent is met by its provider; the missing
		// alternative "old" falls through to "newer"; the newest libc6 is
		// taken, which meets >= 2.36.
		{want: []string{"app"}, got: "app=1.0 dpkg=1.22 exim4=4 libc6=2.41 newer=1 python3=3.13"},
		{want: []string{"python3"}, got: "libc6=2.41 python3=3.13"},
		// Left out by pattern: a relation that names a left-out package
		// is met without it; exim4 is not a name app's relation gives,
		// but what provides one.
		{want: []string{"app"}, without: []string{"py*", "exim4"}, got: "app=1.0 dpkg=1.22 exim4=4 libc6=2.41 newer=1"},
		{want: []string{"app"}, without: []string{"python3", "mail-*"}, got: "app=1.0 dpkg=1.22 libc6=2.41 newer=1"},
		{want: []string{"broken"}, without: []string{"libc6"}, got: "broken=1"},
		// A virtual name asked for directly.
		{want: []string{"mail-transport-agent"}, got: "exim4=4"},
		{want: []string{"nosuch"}, wantErr: "package nosuch is not in the index"},
		{want: []string{"broken"}, wantErr: `cannot satisfy "libc6 (>= 9)", needed by broken`},
	} {
		pkgs, err := idx.Resolve(c.want, c.without)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Resolve(%v) error %v, want %q", c.want, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%v): %v", c.want, err)
			continue
		}
		if got := names(pkgs); got != c.got {
			t.Errorf("Resolve(%v) = %s, want %s", c.want, got, c.got)
		}
	}
	if ess := idx.Essential(); len(ess) != 1 || ess[0].Name != "dpkg" {
		t.Errorf("Essential() = %s, want dpkg", names(ess))
	}
}

func TestResolveNamesTheChain(t *testing.T) {
	idx, err := ParseIndex(strings.NewReader(testIndex + `
Package: top
Version: 1
Architecture: amd64
Depends: broken
Filename: pool/top.deb
Size: 1
SHA256: 33
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = idx.Resolve([]string{"top"}, nil)
	if err == nil || !strings.Contains(err.Error(), "needed by broken <- top") {
		t.Errorf("error %v does not name the chain broken <- top", err)
	}
}

// TestResolveOnto: what a set adds to packages already installed, which
// meet dependencies whatever the index holds and are never returned.
func TestResolveOnto(t *testing.T) {
	idx, err := ParseIndex(strings.NewReader(testIndex))
	if err != nil {
		t.Fatal(err)
	}
	pkg := func(name string) *Package { return idx.Newest(name) }
	// The older libc6 installed does not meet app's >= 2.36: an
	// installed package is kept, so that is an error, not an upgrade.
	old := idx.byName["libc6"][0]
	for _, c := range []struct {
		have    []*Package
		want    []string
		without []string
		got     string
		wantErr string
	}{
		{have: []*Package{pkg("libc6"), pkg("dpkg")}, want: []string{"app"}, got: "app=1.0 exim4=4 newer=1 python3=3.13"},
		{have: []*Package{pkg("libc6"), pkg("dpkg"), pkg("python3")}, want: []string{"app"}, without: []string{"mail-*"}, got: "app=1.0 newer=1"},
		// An installed provider meets a virtual name asked for directly.
		{have: []*Package{pkg("exim4")}, want: []string{"mail-transport-agent", "python3"}, got: "libc6=2.41 python3=3.13"},
		// Asked for and installed already: nothing to add.
		{have: []*Package{pkg("libc6"), pkg("python3")}, want: []string{"python3"}, got: ""},
		{have: []*Package{old, pkg("dpkg")}, want: []string{"app"}, wantErr: `cannot satisfy "libc6 (>= 2.36)", needed by app`},
	} {
		pkgs, err := idx.ResolveOnto(c.have, c.want, c.without)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ResolveOnto(%s, %v) error %v, want %q", names(c.have), c.want, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ResolveOnto(%s, %v): %v", names(c.have), c.want, err)
			continue
		}
		if got := names(pkgs); got != c.got {
			t.Errorf("ResolveOnto(%s, %v) = %s, want %s", names(c.have), c.want, got, c.got)
		}
	}
}
