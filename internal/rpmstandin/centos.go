package rpmstandin

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
)

// DefaultUserland are the Debian packages a stand-in userland holds
// unless the caller says otherwise: what DIB's elements run in an rpm
// distribution's chroot, rpm and dnf among them.
var DefaultUserland = []string{
	"bash", "coreutils", "sed", "grep", "gawk", "findutils", "tar", "gzip", "xz-utils",
	"util-linux", "passwd", "login", "sudo", "procps", "iproute2", "kmod", "udev",
	"systemd", "systemd-sysv", "dbus", "rpm", "dnf", "python3-dnf", "dnf-plugins-core",
	"curl", "ca-certificates", "cpio",
}

// UserlandPackage is the name of the one package that holds the Debian
// userland.
const UserlandPackage = "standin-userland"

// CentOSStreamSpec describes a stand-in for CentOS Stream's BaseOS.
type CentOSStreamSpec struct {
	Release  string // the major version, default "9"
	Userland UserlandSpec
	Key      *Key
	// Work holds the staged userland and the build roots while the
	// repository is made.
	Work string
}

// CentOSStream builds in dir a signed repository laid out as DIB's
// yum-minimal expects of CentOS Stream (DISTRO_NAME=centos,
// DIB_RELEASE=9-stream): the packages it downloads by name (basesystem,
// filesystem, setup, centos-gpg-keys, centos-stream-release, which
// answers to centos-release, and centos-stream-repos), the Debian
// userland as one package, and a small package for each name DIB's
// elements install on this distribution (centosRequested), each
// needing the userland.
func CentOSStream(ctx context.Context, spec CentOSStreamSpec, dir string) (*Repo, *Userland, error) {
	if err := checkTools(); err != nil {
		return nil, nil, err
	}
	if spec.Userland.Packages == nil {
		spec.Userland.Packages = DefaultUserland
	}
	u, err := StageUserland(ctx, spec.Userland, filepath.Join(spec.Work, "userland"))
	if err != nil {
		return nil, nil, err
	}
	repo, err := CentOSStreamFrom(ctx, spec, u, dir)
	if err != nil {
		return nil, nil, err
	}
	return repo, u, nil
}

// CentOSStreamFrom is CentOSStream with the userland already staged. It
// takes out of u's tree what the named packages ship.
func CentOSStreamFrom(ctx context.Context, spec CentOSStreamSpec, u *Userland, dir string) (*Repo, error) {
	if spec.Release == "" {
		spec.Release = "9"
	}
	return buildStandIn(ctx, centosStream(spec.Release, spec.Key), u, spec.Userland.Arch, spec.Work, spec.Key, dir)
}

// centosStream is CentOS Stream rel: its release packages are the ones
// yum-minimal downloads by name (centos-gpg-keys, centos-stream-release,
// which answers to centos-release, and centos-stream-repos).
func centosStream(rel string, key *Key) distribution {
	return distribution{
		name: "CentOS Stream", dist: "el" + rel, efiVendor: "centos", requested: centosRequested,
		release: func(base func(name, version string) Package) []Package {
			keys := base("centos-gpg-keys", rel+".0")
			keys.Files = []File{{Path: CentOSKeyPath, Mode: 0o644, Data: key.Public}}
			release := centosRelease(base("centos-stream-release", rel+".0"), rel)
			repos := base("centos-stream-repos", rel+".0")
			repos.Requires = []string{"centos-gpg-keys", "system-release"}
			repos.Files = centosRepoFiles(rel)
			return []Package{keys, release, repos}
		},
	}
}

// centosRelease is centos-stream-release: the files and names that say
// which distribution and release this is.
func centosRelease(p Package, rel string) Package {
	full := p.Version + "-" + p.Release
	p.Requires = []string{"centos-stream-repos"}
	p.Provides = []string{
		"centos-release = " + full, "redhat-release = " + full,
		"system-release = " + full, "system-release(releasever) = " + rel,
	}
	osRelease := fmt.Sprintf(`NAME="CentOS Stream"
VERSION="%[1]s"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="%[1]s"
PLATFORM_ID="platform:el%[1]s"
PRETTY_NAME="CentOS Stream %[1]s"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:%[1]s"
HOME_URL="https://centos.org/"
BUG_REPORT_URL="https://issues.redhat.com/"
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux %[1]s"
REDHAT_SUPPORT_PRODUCT_VERSION="CentOS Stream"
`, rel)
	p.Files = []File{
		{Path: "/usr/lib/os-release", Mode: 0o644, Data: []byte(osRelease)},
		{Path: "/etc/os-release", Mode: fs.ModeSymlink | 0o777, Target: "../usr/lib/os-release"},
		{Path: "/etc/centos-release", Mode: 0o644, Data: []byte("CentOS Stream release " + rel + "\n")},
		{Path: "/etc/redhat-release", Mode: fs.ModeSymlink | 0o777, Target: "centos-release"},
		{Path: "/etc/system-release", Mode: fs.ModeSymlink | 0o777, Target: "centos-release"},
		{Path: "/etc/system-release-cpe", Mode: 0o644, Data: []byte("cpe:/o:centos:centos:" + rel + "\n")},
	}
	return p
}
