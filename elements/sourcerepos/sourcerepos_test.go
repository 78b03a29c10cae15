package sourcerepos

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestParse(t *testing.T) {
	data := "# a comment\n\n" +
		"ironic git /usr/local/ironic https://opendev.org/openstack/ironic.git\n" +
		"pbr   tar /usr/local/pbr http://tarballs.openstack.org/pbr/pbr-master.tar.gz .\n" +
		"nova package\n" +
		"x file /etc/x ${MIRROR}/x\n"
	got, err := Parse("custom", "source-repository-ironic", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Repo{
		{Element: "custom", File: "source-repository-ironic", Line: 3, Name: "ironic", Type: "git", Destination: "/usr/local/ironic", Location: "https://opendev.org/openstack/ironic.git"},
		{Element: "custom", File: "source-repository-ironic", Line: 4, Name: "pbr", Type: "tar", Destination: "/usr/local/pbr", Location: "http://tarballs.openstack.org/pbr/pbr-master.tar.gz", Ref: "."},
		{Element: "custom", File: "source-repository-ironic", Line: 5, Name: "nova", Type: "package"},
		{Element: "custom", File: "source-repository-ironic", Line: 6, Name: "x", Type: "file", Destination: "/etc/x", Location: "${MIRROR}/x", Expanded: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d repos, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v\nwant %+v", want[i].Line, got[i], want[i])
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{"ok git /a http://x\nironic svn /usr/local/ironic http://x\n", `element e: source-repository-f line 2: unknown type "svn" for ironic`},
		{"ironic git /a http://x master extra\n", `element e: source-repository-f line 1: "ironic git /a http://x master extra" is not <name> <type>`},
		{"ironic\n", "line 1:"},
	} {
		_, err := Parse("e", "source-repository-f", []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.data, err, c.want)
		}
	}
	// What only the guest expands, it checks there.
	if _, err := Parse("e", "f", []byte("$NAME $TYPE /a b\n")); err != nil {
		t.Errorf("a line with expansions: %v", err)
	}
}

func TestRead(t *testing.T) {
	fsys := fstest.MapFS{
		"source-repository-b":  {Data: []byte("b tar /b http://b\n")},
		"source-repository-a":  {Data: []byte("a git /a http://a\n")},
		"source-repository-a~": {Data: []byte("not a line at all !\n")},
		"install.d/10-x":       {Data: []byte("#!/bin/sh\n")},
	}
	got, err := Read("e", fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Errorf("got %+v, want a then b, the backup skipped", got)
	}
}

func TestOverride(t *testing.T) {
	env := map[string]string{
		"DIB_REPOLOCATION_diskimage_builder": "/src/dib",
		"DIB_REPOREF_diskimage_builder":      "refs/changes/72/61972/8",
		"DIB_REPOTYPE_other":                 "svn",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	r, err := Repo{Name: "diskimage-builder", Type: "git", Location: "https://opendev.org/dib", Ref: "master"}.Override(lookup)
	if err != nil || r.Location != "/src/dib" || r.Ref != "refs/changes/72/61972/8" || r.Type != "git" {
		t.Errorf("got %+v, %v", r, err)
	}
	_, err = Repo{Element: "e", File: "f", Line: 3, Name: "other", Type: "git"}.Override(lookup)
	if err == nil || !strings.Contains(err.Error(), "DIB_REPOTYPE_other=svn (source repository other of element e, f line 3): unknown type") {
		t.Errorf("an unknown type override: %v", err)
	}
}

func TestVarAndLocalPath(t *testing.T) {
	if v := Var("DIB_REPOREF_", "diskimage-builder.x+y"); v != "DIB_REPOREF_diskimage_builder_x_y" {
		t.Errorf("Var = %s", v)
	}
	for loc, want := range map[string]string{
		"/src/x": "/src/x", "./x": "./x", "file:///src/x.tgz": "/src/x.tgz",
		"https://h/x": "", "git://h/x": "", "host:path": "",
	} {
		got, ok := LocalPath(loc)
		if got != want || ok != (want != "") {
			t.Errorf("LocalPath(%q) = %q %v, want %q", loc, got, ok, want)
		}
	}
}
