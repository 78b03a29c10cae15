package pkgtools

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPhasePackages(t *testing.T) {
	dir := t.TempDir()
	maps := filepath.Join(dir, "pkg-map")
	os.Mkdir(maps, 0o755)
	// bootloader maps one name to two packages and one to none.
	os.WriteFile(filepath.Join(maps, "bootloader"), []byte(`{"default": {"grub-efi-amd64": "grub-efi grub-pc-bin", "extlinux": ""}}`), 0o644)
	file := filepath.Join(dir, "package-installs.json")
	os.WriteFile(file, []byte(`{
  "install.d": {
    "install": [["netbase", "debian-minimal"], ["grub-efi-amd64", "bootloader"], ["sudo", "devuser"], ["extlinux", "bootloader"], ["sudo", "base"]],
    "uninstall": [["gcc", "my-element"]]
  }
}`), 0o644)
	t.Setenv("DISTRO_NAME", "debian")
	t.Setenv("DIB_RELEASE", "trixie")

	got, _, err := phasePackages(file, "install.d", false, maps, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Elements in first-seen order; an element without a map passes its
	// names through; a repeat is dropped; an empty mapping is skipped.
	want := []string{"netbase", "grub-efi", "grub-pc-bin", "sudo"}
	if !slices.Equal(got, want) {
		t.Errorf("install: got %q, want %q", got, want)
	}
	got, _, err = phasePackages(file, "install.d", true, maps, io.Discard)
	if err != nil || !slices.Equal(got, []string{"gcc"}) {
		t.Errorf("uninstall: got %q, %v", got, err)
	}
	got, _, err = phasePackages(file, "post-install.d", false, maps, io.Discard)
	if err != nil || len(got) != 0 {
		t.Errorf("a phase with nothing: got %q, %v", got, err)
	}
}

func TestPhasePackagesBadMap(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken"), []byte(`{not json`), 0o644)
	file := filepath.Join(dir, "p.json")
	os.WriteFile(file, []byte(`{"install.d": {"install": [["x", "broken"]], "uninstall": []}}`), 0o644)
	t.Setenv("DISTRO_NAME", "debian")
	if _, _, err := phasePackages(file, "install.d", false, dir, io.Discard); err == nil {
		t.Fatal("a pkg-map that does not parse was accepted")
	}
}

func TestSquashWritesDIBFile(t *testing.T) {
	dir := t.TempDir()
	el := filepath.Join(dir, "elements", "mine")
	os.MkdirAll(el, 0o755)
	os.WriteFile(filepath.Join(el, "package-installs.yaml"), []byte("curl:\nvim:\n  phase: post-install.d\n"), 0o644)
	out := filepath.Join(dir, "package-installs.json")
	if code := SquashMain([]string{"--elements=mine", "--path=" + filepath.Join(dir, "elements"), out}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	t.Setenv("DISTRO_NAME", "debian")
	got, _, err := phasePackages(out, "install.d", false, dir, io.Discard)
	if err != nil || !slices.Equal(got, []string{"curl"}) {
		t.Errorf("install.d: %q %v", got, err)
	}
	got, _, err = phasePackages(out, "post-install.d", false, dir, io.Discard)
	if err != nil || !slices.Equal(got, []string{"vim"}) {
		t.Errorf("post-install.d: %q %v", got, err)
	}
	if code := SquashMain([]string{"--elements=missing", "--path=" + filepath.Join(dir, "elements"), out}, io.Discard, io.Discard); code == 0 {
		t.Error("a missing element was squashed")
	}
}

// When apt has no package, the failure names the element that asked for
// it, and the name it used where its pkg-map renamed it.
func TestExplainMissing(t *testing.T) {
	apt := `Reading package lists...
E: Unable to locate package biosdevname
E: Package 'python-is-python2' has no installation candidate
E: Unable to locate package vim-tiny`
	askedBy := map[string]asked{
		"biosdevname":       {element: "simple-init", name: "biosdevname"},
		"python-is-python2": {element: "legacy", name: "python"},
		"curl":              {element: "base", name: "curl"},
	}
	got := explainMissing(apt, askedBy)
	want := []string{
		"the archive has no package biosdevname: element simple-init asked for it in its package-installs file; drop it there, or map it for this release in the element's pkg-map",
		"the archive has no package python-is-python2: element legacy asked for it as python (its pkg-map made it python-is-python2) in its package-installs file; drop it there, or map it for this release in the element's pkg-map",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("explainMissing =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := explainMissing("E: Sub-process /usr/bin/dpkg returned an error code (1)", askedBy); len(got) != 0 {
		t.Errorf("a failure that is no missing package was explained: %q", got)
	}
}

// lastLines keeps the end of what is written, across writes that split
// lines.
func TestLastLines(t *testing.T) {
	l := &lastLines{max: 2}
	io.WriteString(l, "one\ntw")
	io.WriteString(l, "o\nthree\nfo")
	if got := l.String(); got != "two\nthree\nfo" {
		t.Errorf("lastLines = %q", got)
	}
}
