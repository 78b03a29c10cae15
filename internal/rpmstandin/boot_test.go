package rpmstandin

import (
	"slices"
	"strings"
	"testing"
)

// TestBehavioursAreOfRequestedPackages keeps every behaviour on a
// package the stand-in has: one keyed by a name it lacks would never
// be built, and the image would silently go without it.
func TestBehavioursAreOfRequestedPackages(t *testing.T) {
	var names []string
	for _, list := range [][]requested{centosRequested, fedoraRequested, opensuseRequested} {
		for _, r := range list {
			names = append(names, r.name)
		}
	}
	for name, b := range behaviours("centos") {
		if !slices.Contains(names, name) {
			t.Errorf("behaviour for %s, which the stand-in has no package of", name)
		}
		for _, r := range b.requires {
			if !slices.Contains(names, r) {
				t.Errorf("%s requires %s, which the stand-in has no package of", name, r)
			}
		}
		for _, f := range b.files {
			if _, err := filesName(f.Path); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if !strings.Contains(behaviours("centos")["grub2-efi-x64"].post, "/boot/efi/EFI/centos") {
		t.Error("grub2-efi-x64 does not put GRUB in the vendor's directory")
	}
}

func TestBootableUserlandHasKernelAndGRUBForItsArch(t *testing.T) {
	for arch, want := range map[string][]string{
		"amd64": {"linux-image-cloud-amd64", "grub-efi-amd64-bin", "grub-pc-bin", "dracut"},
		"arm64": {"linux-image-cloud-arm64", "grub-efi-arm64-bin", "dracut"},
	} {
		got := BootableUserland(arch)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("BootableUserland(%s) lacks %s", arch, w)
			}
		}
		if len(got) <= len(DefaultUserland) || !slices.Equal(got[:len(DefaultUserland)], DefaultUserland) {
			t.Errorf("BootableUserland(%s) is not DefaultUserland and more", arch)
		}
	}
}
