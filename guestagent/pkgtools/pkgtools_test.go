package pkgtools

import (
	"io"
	"os"
	"path/filepath"
	"slices"
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

	got, err := phasePackages(file, "install.d", false, maps, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Elements in first-seen order; an element without a map passes its
	// names through; a repeat is dropped; an empty mapping is skipped.
	want := []string{"netbase", "grub-efi", "grub-pc-bin", "sudo"}
	if !slices.Equal(got, want) {
		t.Errorf("install: got %q, want %q", got, want)
	}
	got, err = phasePackages(file, "install.d", true, maps, io.Discard)
	if err != nil || !slices.Equal(got, []string{"gcc"}) {
		t.Errorf("uninstall: got %q, %v", got, err)
	}
	got, err = phasePackages(file, "post-install.d", false, maps, io.Discard)
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
	if _, err := phasePackages(file, "install.d", false, dir, io.Discard); err == nil {
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
	got, err := phasePackages(out, "install.d", false, dir, io.Discard)
	if err != nil || !slices.Equal(got, []string{"curl"}) {
		t.Errorf("install.d: %q %v", got, err)
	}
	got, err = phasePackages(out, "post-install.d", false, dir, io.Discard)
	if err != nil || !slices.Equal(got, []string{"vim"}) {
		t.Errorf("post-install.d: %q %v", got, err)
	}
	if code := SquashMain([]string{"--elements=missing", "--path=" + filepath.Join(dir, "elements"), out}, io.Discard, io.Discard); code == 0 {
		t.Error("a missing element was squashed")
	}
}
