package pkgdb

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

const status = `Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u8
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system.
 Status: not installed

Package: old-conf
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: zlib1g
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 1:1.2.13.dfsg-1
`

// dpkg's status file is read inside the tree: installed packages only,
// continuation lines not taken for fields.
func TestInstalledFromDpkg(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(tree, dpkgStatus), []byte(status), 0o644)
	got, err := Installed(&toolrun.Fake{}, tree)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Package{pkg("base-files", "12.4+deb12u8", "amd64"), pkg("zlib1g", "1:1.2.13.dfsg-1", "amd64")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A status file that is a link out of the tree is not followed.
func TestInstalledStaysInTheTree(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "status")
	os.WriteFile(outside, []byte(status), 0o644)
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "var/lib/dpkg"), 0o755)
	os.Symlink(outside, filepath.Join(tree, dpkgStatus))
	if pkgs, err := Installed(&toolrun.Fake{}, tree); err == nil {
		t.Errorf("read through a link out of the tree: %v", pkgs)
	}
}

// rpm's database is listed by the tree's own rpm, chrooted; keys it
// imported are not packages; a tree with neither database has none.
func TestInstalledFromRpm(t *testing.T) {
	tree := t.TempDir()
	if _, err := Installed(&toolrun.Fake{}, tree); !errors.Is(err, ErrNone) {
		t.Errorf("no database: %v", err)
	}
	os.MkdirAll(filepath.Join(tree, "usr/lib/sysimage/rpm"), 0o755)
	run := &toolrun.Fake{Reply: func([]string) ([]byte, error) {
		return []byte("bash\t5.2.26-3.fc40\tx86_64\ngpg-pubkey\ta15b79cc-63d04c2c\t(none)\nvim-minimal\t2:9.1.0-1.fc40\tx86_64\n"), nil
	}}
	got, err := Installed(run, tree)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Package{pkg("bash", "5.2.26-3.fc40", "x86_64"), pkg("vim-minimal", "2:9.1.0-1.fc40", "x86_64")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if lines := run.Lines(); len(lines) != 1 || lines[0] != "chroot "+tree+" rpm -qa --qf "+rpmQuery {
		t.Errorf("ran %q", lines)
	}
}

func pkg(name, version, arch string) api.Package {
	return api.Package{Name: name, Version: version, Arch: arch}
}
