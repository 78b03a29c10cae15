package vmimage

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/vmimage/debrepo"
)

func TestDebianArch(t *testing.T) {
	for goarch, want := range map[string]string{
		"amd64": "amd64", "arm64": "arm64", "riscv64": "riscv64", "ppc64le": "ppc64el", "s390x": "s390x",
	} {
		if got, err := DebianArch(goarch); err != nil || got != want {
			t.Errorf("DebianArch(%s) = %q, %v; want %q", goarch, got, err, want)
		}
	}
	for _, goarch := range []string{"386", "arm", "mips", ""} {
		if _, err := DebianArch(goarch); err == nil || !strings.Contains(err.Error(), "no helper appliance for architecture "+goarch) {
			t.Errorf("DebianArch(%q): %v, want no helper appliance", goarch, err)
		}
	}
}

func TestDefaultSpec(t *testing.T) {
	s, err := DefaultSpec("", "")
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := DebianArch(runtime.GOARCH)
	if s.Mirror != debrepo.DefaultMirror || s.Suite != "stable" || s.Arch != arch {
		t.Errorf("DefaultSpec(\"\", \"\") = %s %s %s, want %s stable %s", s.Mirror, s.Suite, s.Arch, debrepo.DefaultMirror, arch)
	}
	s, err = DefaultSpec("http://127.0.0.1:9/debian", "arm64")
	if err != nil || s.Mirror != "http://127.0.0.1:9/debian" || s.Arch != "arm64" {
		t.Errorf("DefaultSpec(mirror, arm64) = %s %s, %v", s.Mirror, s.Arch, err)
	}
	if _, err := DefaultSpec("", "mips"); err == nil {
		t.Error("DefaultSpec for mips: no error")
	}
	// What is loaded at boot is shipped.
	for _, m := range s.BootModules {
		if !slices.Contains(s.Modules, m) {
			t.Errorf("boot module %s is not among the modules shipped", m)
		}
	}
	for _, p := range []string{"debootstrap", "e2fsprogs", "ca-certificates"} {
		if !slices.Contains(s.Packages, p) {
			t.Errorf("the appliance has no %s", p)
		}
	}
}

// TestSpecKey: the cache entry's name covers all of the spec, and is the
// same for the same spec.
func TestSpecKey(t *testing.T) {
	base := Spec{Mirror: "http://m/debian", Suite: "stable", Arch: "amd64", Packages: []string{"a"}, Modules: []string{"m"}, BootModules: []string{"m"}}
	if base.key() != base.key() {
		t.Error("key is not stable")
	}
	seen := map[string]string{base.key(): "base"}
	for name, change := range map[string]func(*Spec){
		"mirror":       func(s *Spec) { s.Mirror = "http://n/debian" },
		"suite":        func(s *Spec) { s.Suite = "testing" },
		"arch":         func(s *Spec) { s.Arch = "arm64" },
		"packages":     func(s *Spec) { s.Packages = []string{"a", "b"} },
		"modules":      func(s *Spec) { s.Modules = []string{"m", "n"} },
		"boot modules": func(s *Spec) { s.BootModules = nil },
		"without":      func(s *Spec) { s.Without = []string{"x*"} },
	} {
		s := base
		change(&s)
		k := s.key()
		if other, ok := seen[k]; ok {
			t.Errorf("a spec with another %s has the key of %s: %s", name, other, k)
		}
		seen[k] = name
		if len(k) != 16 || strings.Trim(k, "0123456789abcdef") != "" {
			t.Errorf("key %q is not 16 hex digits", k)
		}
	}
}

// TestManifestDigest: the appliance's name changes with the packages and
// modules in it, and with nothing else.
func TestManifestDigest(t *testing.T) {
	m := Manifest{
		Spec:   Spec{Modules: []string{"ext4"}, BootModules: []string{"virtio_blk"}},
		Kernel: PackageRef{Name: "linux-image-6.1", SHA256: "k1"},
		Packages: []PackageRef{
			{Name: "bash", Version: "5", SHA256: "b1"},
			{Name: "tar", Version: "1", SHA256: "t1"},
		},
	}
	d := m.Digest()
	if len(d) != 16 {
		t.Errorf("digest %q: want 16 hex digits", d)
	}
	same := m
	same.Suite, same.KernelVersion = "trixie", "6.1.0-1"
	same.Spec.Mirror = "http://other/debian"
	same.Packages = []PackageRef{{Name: "bash", Version: "6", SHA256: "b1"}, {Name: "tar", SHA256: "t1"}}
	if same.Digest() != d {
		t.Error("the digest changed with what names no package content (suite, versions, mirror)")
	}
	for name, change := range map[string]func(*Manifest){
		"kernel": func(m *Manifest) { m.Kernel.SHA256 = "k2" },
		"a package": func(m *Manifest) {
			m.Packages = []PackageRef{{Name: "bash", SHA256: "b2"}, {Name: "tar", SHA256: "t1"}}
		},
		"one package gone": func(m *Manifest) { m.Packages = m.Packages[:1] },
		"modules":          func(m *Manifest) { m.Spec.Modules = []string{"ext4", "xfs"} },
		"boot modules":     func(m *Manifest) { m.Spec.BootModules = nil },
	} {
		c := m
		change(&c)
		if c.Digest() == d {
			t.Errorf("the digest did not change with %s", name)
		}
	}
}
