package plan

import (
	"slices"
)

// rpmFamily are DIB's elements that build an rpm distribution's root,
// and those that do the work for them, whose hooks outside the chroot
// call the helper's rpm, dnf, zypper, qemu-img or btrfs tools:
// a build with any of them in its expanded element set gets the helper's
// rpm tools layer (see vmimage.Layers).
//
// The rule is a fixed list of element names, not a file an element
// carries, because DIB's own elements are used as they are, from a DIB
// checkout on ELEMENTS_PATH, and carry no file of dibvm's; a user's
// element that builds on them names one of them in its element-deps,
// so the expanded set has it. A build whose own hooks call those tools
// without any of these elements asks with --helper-tools.
var rpmFamily = []string{
	// The operating systems.
	"almalinux-container", "centos", "centos-minimal", "centos7", "fedora", "fedora-container",
	"fedora-minimal", "openeuler-minimal", "opensuse", "opensuse-minimal", "rhel", "rhel7",
	"rocky-container",
	// What they are built with.
	"redhat-common", "rpm-distro", "yum-minimal", "zypper-minimal",
}

// containerFamily are DIB's elements that build a root from a
// Containerfile, with podman outside the chroot: a build with one of
// them gets the helper's container tools layer.
var containerFamily = []string{
	"containerfile", "almalinux-container", "fedora-container", "rocky-container", "ubuntu-systemd-container",
}

// helperTools are the helper's tool layers a build needs, by name and
// sorted: those asked for (--helper-tools), rpm when the expanded
// elements have one of rpmFamily, and container when they have one of
// containerFamily. Whether asked is a layer dibvm has is
// the caller's to check, where it can name the flag.
func helperTools(elements, asked []string) []string {
	out := slices.Clone(asked)
	for layer, family := range map[string][]string{"rpm": rpmFamily, "container": containerFamily} {
		if slices.ContainsFunc(elements, func(e string) bool { return slices.Contains(family, e) }) {
			out = append(out, layer)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
