package plan

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/vmimage"
)

func TestHelperTools(t *testing.T) {
	for _, c := range []struct {
		elements, asked, want []string
	}{
		{elements: []string{"base", "debian-minimal", "vm"}, want: nil},
		{elements: []string{"base", "fedora-minimal", "yum-minimal", "vm"}, want: []string{"rpm"}},
		{elements: []string{"opensuse-minimal", "zypper-minimal"}, asked: []string{"rpm"}, want: []string{"rpm"}},
		{elements: []string{"rocky-container", "containerfile"}, want: []string{"container", "rpm"}},
		// A container build of Ubuntu needs no rpm tools.
		{elements: []string{"ubuntu-systemd-container", "containerfile"}, want: []string{"container"}},
		{elements: []string{"my-os", "containerfile"}, asked: []string{"container"}, want: []string{"container"}},
		// DIB 3.13's names, which master dropped.
		{elements: []string{"centos7"}, want: []string{"rpm"}},
		{elements: []string{"rhel7"}, want: []string{"rpm"}},
		// Asked for, with no rpm element.
		{elements: []string{"debian-minimal"}, asked: []string{"rpm", "rpm"}, want: []string{"rpm"}},
		// A name like one of the family's is not one.
		{elements: []string{"centos-like", "my-fedora"}, want: nil},
	} {
		if got := helperTools(c.elements, c.asked); !slices.Equal(got, c.want) {
			t.Errorf("helperTools(%q, %q) = %q, want %q", c.elements, c.asked, got, c.want)
		}
	}
}

// Every layer the rule names is one the appliance has.
func TestHelperToolsAreLayers(t *testing.T) {
	if _, err := vmimage.Layers(helperTools(slices.Concat(rpmFamily, containerFamily), nil)); err != nil {
		t.Error(err)
	}
}

// A user's element that builds on one of DIB's rpm elements gets the rpm
// tools through its element-deps: the rule reads the expanded set.
func TestHelperToolsThroughElementDeps(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("my-os/element-deps", "fedora-minimal\n")
	write("fedora-minimal/element-provides", "operating-system\n")
	write("fedora-minimal/element-deps", "yum-minimal\n")
	write("yum-minimal/README.rst", "stand-in\n")
	lib, err := elements.NewLibrary(dir, elements.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	els, err := elements.Expand(lib, elements.CommandLine([]string{"my-os"}, true, "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if got := helperTools(elements.Names(els), nil); !slices.Equal(got, []string{"rpm"}) {
		t.Errorf("helperTools(%q) = %q, want rpm", elements.Names(els), got)
	}
}
