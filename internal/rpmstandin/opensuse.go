package rpmstandin

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// OpenSUSESpec describes a stand-in for openSUSE Leap's oss repository.
type OpenSUSESpec struct {
	Release  string // the Leap release, default "15.6"
	Userland UserlandSpec
	Key      *Key
	// Work holds the staged userland and the build roots while the
	// repository is made.
	Work string
}

// OpenSUSEUserland is DefaultUserland with zypper, which DIB's zypper
// element's install-packages runs in the chroot.
var OpenSUSEUserland = append(slices.Clone(DefaultUserland), "zypper")

// OpenSUSE builds in dir a signed repository laid out as DIB's
// zypper-minimal expects of openSUSE Leap (DISTRO_NAME=opensuse): the
// packages it installs by name into the new root with the helper's
// zypper (filesystem, grep, gzip, xz, the base pattern, python3, zypper,
// sudo, ca-certificates-mozilla), the Debian userland as one package,
// and a small package for each name DIB's elements install there. The
// key that signs it is beside repomd.xml, where zypper imports it from.
func OpenSUSE(ctx context.Context, spec OpenSUSESpec, dir string) (*Repo, *Userland, error) {
	if err := checkTools(); err != nil {
		return nil, nil, err
	}
	if spec.Userland.Packages == nil {
		spec.Userland.Packages = OpenSUSEUserland
	}
	u, err := StageUserland(ctx, spec.Userland, filepath.Join(spec.Work, "userland"))
	if err != nil {
		return nil, nil, err
	}
	repo, err := OpenSUSEFrom(ctx, spec, u, dir)
	if err != nil {
		return nil, nil, err
	}
	return repo, u, nil
}

// OpenSUSEFrom is OpenSUSE with the userland already staged.
func OpenSUSEFrom(ctx context.Context, spec OpenSUSESpec, u *Userland, dir string) (*Repo, error) {
	if spec.Release == "" {
		spec.Release = "15.6"
	}
	return buildStandIn(ctx, openSUSE(spec.Release), u, spec.Userland.Arch, spec.Work, spec.Key, dir)
}

// opensuseRequested are the names DIB 3.13's elements ask for on
// openSUSE (DISTRO_NAME=opensuse, the suse family), after pkg-map.
var opensuseRequested = []requested{
	{name: "grep", from: "zypper-minimal root.d/08-zypper-chroot"},
	{name: "gzip", from: "zypper-minimal root.d/08-zypper-chroot"},
	{name: "xz", from: "zypper-minimal root.d/08-zypper-chroot"},
	{name: "python3", from: "zypper-minimal root.d/08-zypper-chroot (ZYPPER_INSTALL_SYSTEM_PYTHON)"},
	{name: "zypper", from: "zypper-minimal root.d/08-zypper-chroot"},
	{name: "sudo", from: "zypper-minimal root.d/08-zypper-chroot and package-installs; devuser package-installs"},
	{name: "ca-certificates-mozilla", from: "zypper-minimal root.d/08-zypper-chroot and package-installs"},
	{name: "kernel-default", from: "zypper-minimal package-installs"},
	{name: "glibc-locale", from: "zypper-minimal package-installs"},
	{name: "bash", from: "zypper-minimal package-installs"},
	{name: "lsb-release", from: "zypper-minimal package-installs"},
	{name: "openssl", from: "zypper-minimal package-installs"},
	{name: "sed", from: "zypper-minimal package-installs"},
	{name: "tar", from: "zypper-minimal package-installs"},
	{name: "curl", from: "cache-url package-installs"},
	{name: "git-core", from: "source-repositories package-installs (git, pkg-map family suse)"},
}

// openSUSE is openSUSE Leap rel. Its release packages are the base
// pattern zypper-minimal installs, which brings openSUSE-release (what
// says which distribution this is) and aaa_base (the sysconfig files
// zypper-minimal edits).
func openSUSE(rel string) distribution {
	return distribution{
		name: "openSUSE Leap", dist: "lp" + strings.ReplaceAll(rel, ".", ""), efiVendor: "opensuse", requested: opensuseRequested,
		release: func(base func(name, version string) Package) []Package {
			release := base("openSUSE-release", rel)
			release.Provides = []string{"distribution-release = " + rel, "product(openSUSE) = " + rel}
			release.Files = opensuseReleaseFiles(rel)
			aaaBase := base("aaa_base", "84.87")
			aaaBase.Requires = []string{"filesystem"}
			aaaBase.Files = []File{{Path: "/etc/sysconfig/language", Mode: 0o644, Config: true,
				Data: []byte("RC_LANG=\"\"\nROOT_USES_LANG=\"ctype\"\n")}}
			pattern := base("patterns-openSUSE-base", "20200505")
			pattern.Requires = []string{"openSUSE-release", "aaa_base", UserlandPackage}
			return []Package{release, aaaBase, pattern}
		},
	}
}

// opensuseReleaseFiles are openSUSE-release's.
func opensuseReleaseFiles(rel string) []File {
	osRelease := fmt.Sprintf(`NAME="openSUSE Leap"
VERSION="%[1]s"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="%[1]s"
PRETTY_NAME="openSUSE Leap %[1]s"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:opensuse:leap:%[1]s"
BUG_REPORT_URL="https://bugs.opensuse.org"
HOME_URL="https://www.opensuse.org/"
`, rel)
	return []File{
		{Path: "/usr/lib/os-release", Mode: 0o644, Data: []byte(osRelease)},
		{Path: "/etc/os-release", Mode: fs.ModeSymlink | 0o777, Target: "../usr/lib/os-release"},
		{Path: "/etc/SUSE-brand", Mode: 0o644, Data: []byte("openSUSE\nVERSION = " + rel + "\n")},
	}
}
