package pkgmap

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The map and cases DIB's pkg-map was checked with.
const testMap = `{
  "release": {"fedora": {"23": {"nova_package": "foo bar"}}, "centos": {"8": {"x": "centos8x"}}},
  "distro": {"fedora": {"nova_package": "openstack-compute", "glance_package": "openstack-image"}},
  "family": {"redhat": {"nova_package": "openstack-nova", "glance_package": "openstack-glance"}, "suse": {"nova_package": ""}},
  "default": {"nova_package": "nova", "glance_package": "glance", "nullpkg": null}
}`

func TestMain_DIBCases(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pm.json")
	os.WriteFile(file, []byte(testMap), 0o644)
	os.WriteFile(filepath.Join(dir, "nova-compute"), []byte(testMap), 0o644)
	noenv := func(string) string { return "" }
	for _, c := range []struct {
		args       string
		env        map[string]string
		wantOut    string
		wantCode   int
		wantStderr string
	}{
		{"--pkg-map " + file + " --distro fedora nova_package glance_package", nil, "openstack-compute\nopenstack-image\n", 0, ""},
		{"--pkg-map " + file + " --distro fedora --release 23 nova_package glance_package", nil, "foo bar\nopenstack-image\n", 0, ""},
		{"--pkg-map " + file + " --distro rhel nova_package", nil, "openstack-nova\n", 0, ""},
		{"--pkg-map " + file + " --distro ubuntu nova_package", nil, "nova\n", 0, ""},
		{"--pkg-map " + file + " --distro opensuse nova_package", nil, "", 0, ""},
		{"--pkg-map " + file + " --distro opensuse nullpkg", nil, "", 0, ""},
		{"--pkg-map " + file + " --distro centos --release 8-stream x", nil, "centos8x\n", 0, ""},
		// A release map applies only under its distro.
		{"--pkg-map " + file + " --distro rhel --release 23 nova_package", nil, "openstack-nova\n", 0, ""},
		{"--pkg-map " + file + " --distro ubuntu unknown", nil, "", 1, "has no mapping for package unknown"},
		{"--pkg-map " + file + " --distro ubuntu --missing-ok --prefix - unknown nova_package", nil, "-unknown\n-nova\n", 0, ""},
		{"--element nonexistent-element --distro ubuntu x", nil, "", 2, "required pkg-map for nonexistent-element does not exist"},
		{"--element nonexistent-element --distro ubuntu --missing-ok --prefix + x y", nil, "+x\n+y\n", 0, ""},
		{"--element nova-compute nova_package", map[string]string{"DISTRO_NAME": "fedora"}, "openstack-compute\n", 0, ""},
		{"nova_package --element=nova-compute --distro=debian", nil, "nova\n", 0, ""},
		{"--distro ubuntu x", nil, "", 1, "please specify an --element argument"},
		{"--element a --pkg-map b --distro ubuntu", nil, "", 1, "specify either --element or --pkg-map"},
		{"--element nova-compute x", nil, "", 1, "please specify a --distro argument or set DISTRO_NAME"},
		{"--element nova-compute --distro", nil, "", 1, "--distro needs a value"},
		// Flags it does not know, refused first and all named, as argparse does.
		{"--bogus", nil, "", 2, "pkg-map: error: unrecognized arguments: --bogus"},
		{"--pkg-map " + file + " --distro fedora --bogus nova_package -x", nil, "", 2, "unrecognized arguments: --bogus -x"},
		{"--pkg-map " + file + " --distro ubuntu --missing-ok -- -odd", nil, "-odd\n", 0, ""},
	} {
		env := noenv
		if c.env != nil {
			env = func(k string) string { return c.env[k] }
		}
		var out, errb bytes.Buffer
		code := Main(strings.Fields(c.args), env, dir, &out, &errb)
		if code != c.wantCode || out.String() != c.wantOut || !strings.Contains(errb.String(), c.wantStderr) {
			t.Errorf("pkg-map %s:\n exit %d, stdout %q, stderr %q\n want exit %d, stdout %q, stderr containing %q",
				c.args, code, out.String(), errb.String(), c.wantCode, c.wantOut, c.wantStderr)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{`{"default": []}`, `not json`, `{"default": {"a": 1}}`, `{} {}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) accepted", bad)
		}
	}
}

func TestFamily(t *testing.T) {
	for distro, fam := range map[string]string{
		"debian": "debian", "ubuntu": "debian", "fedora": "redhat", "rhel": "redhat", "centos": "redhat",
		"rocky": "redhat", "almalinux": "redhat", "centos7": "redhat", "rhel7": "redhat", "openeuler": "redhat", "opensuse": "suse", "gentoo": "gentoo", "arch": "",
	} {
		if got := Family(distro); got != fam {
			t.Errorf("Family(%s) = %q, want %q", distro, got, fam)
		}
	}
}

func FuzzPkgMap(f *testing.F) {
	f.Add([]byte(testMap), "fedora", "23", "nova_package")
	f.Add([]byte(`{"default": {"a": ""}}`), "debian", "", "a")
	f.Add([]byte(`{"release": {"x": {}}}`), "x", "8-stream", "")
	f.Fuzz(func(t *testing.T, data []byte, distro, release, name string) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		for _, missingOK := range []bool{false, true} {
			out, err := m.Resolve(distro, release, []string{name}, missingOK)
			if missingOK && err != nil {
				t.Fatalf("missing-ok returned %v", err)
			}
			if len(out) > 1 {
				t.Fatalf("one name gave %d lines", len(out))
			}
		}
	})
}
