package rpmstandin

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FedoraSpec describes a stand-in for Fedora's everything repository.
type FedoraSpec struct {
	Release  string // the release, default "41"
	Userland UserlandSpec
	Key      *Key
	// Work holds the staged userland and the build roots while the
	// repository is made.
	Work string
}

// Fedora builds in dir a signed repository laid out as DIB's
// yum-minimal expects of Fedora (DISTRO_NAME=fedora, DIB_RELEASE over
// 29): the packages it downloads by name (fedora-release-cloud,
// fedora-release-common, fedora-repos and fedora-gpg-keys), the Debian
// userland as one package, and a small package for each name DIB's
// elements install on Fedora, each needing the userland.
func Fedora(ctx context.Context, spec FedoraSpec, dir string) (*Repo, *Userland, error) {
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
	repo, err := FedoraFrom(ctx, spec, u, dir)
	if err != nil {
		return nil, nil, err
	}
	return repo, u, nil
}

// FedoraFrom is Fedora with the userland already staged. It takes out
// of u's tree what the named packages ship.
func FedoraFrom(ctx context.Context, spec FedoraSpec, u *Userland, dir string) (*Repo, error) {
	if spec.Release == "" {
		spec.Release = "41"
	}
	return buildStandIn(ctx, fedora(spec.Release, spec.Key), u, spec.Userland.Arch, spec.Work, spec.Key, dir)
}

// FedoraKeyPath is where fedora-gpg-keys puts the key that signs
// release rel's packages (the stand-in's test key); Fedora's .repo files
// name it by a link per architecture.
func FedoraKeyPath(rel string) string {
	return "/etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-" + rel + "-primary"
}

// fedoraRequested are the names DIB 3.13's elements ask for on Fedora:
// CentOS's, and the SELinux tools redhat-common's pkg-map names
// otherwise there.
var fedoraRequested = append(slices.Clone(centosRequested),
	requested{name: "python3-libselinux", from: "redhat-common package-installs (libselinux-python, pkg-map distro fedora)"},
	requested{name: "python3-policycoreutils", from: "redhat-common package-installs (policycoreutils, pkg-map distro fedora)"},
	requested{name: "policycoreutils-python-utils", from: "redhat-common package-installs (policycoreutils-python, pkg-map distro fedora)"},
)

// fedora is Fedora rel, in its Cloud edition.
func fedora(rel string, key *Key) distribution {
	return distribution{
		name: "Fedora", dist: "fc" + rel, efiVendor: "fedora", requested: fedoraRequested,
		release: func(base func(name, version string) Package) []Package {
			full := rel + "-1.fc" + rel
			keys := base("fedora-gpg-keys", rel)
			keys.Files = []File{{Path: FedoraKeyPath(rel), Mode: 0o644, Data: key.Public}}
			for _, arch := range []string{"x86_64", "aarch64"} {
				keys.Files = append(keys.Files, File{Path: "/etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-" + rel + "-" + arch,
					Mode: fs.ModeSymlink | 0o777, Target: filepath.Base(FedoraKeyPath(rel))})
			}
			repos := base("fedora-repos", rel)
			repos.Requires = []string{"fedora-gpg-keys"}
			repos.Files = fedoraRepoFiles()
			common := base("fedora-release-common", rel)
			common.Requires = []string{"fedora-repos"}
			common.Files = fedoraReleaseFiles(rel)
			cloud := base("fedora-release-cloud", rel)
			cloud.Requires = []string{"fedora-release-common"}
			cloud.Provides = []string{
				"fedora-release = " + full, "fedora-release-variant = " + full, "redhat-release = " + full,
				"system-release = " + full, "system-release(releasever) = " + rel,
			}
			return []Package{keys, repos, common, cloud}
		},
	}
}

// fedoraReleaseFiles are fedora-release-common's: what says which
// distribution and release this is.
func fedoraReleaseFiles(rel string) []File {
	osRelease := fmt.Sprintf(`NAME="Fedora Linux"
VERSION="%[1]s (Cloud Edition)"
ID=fedora
VERSION_ID=%[1]s
PLATFORM_ID="platform:f%[1]s"
PRETTY_NAME="Fedora Linux %[1]s (Cloud Edition)"
ANSI_COLOR="0;38;2;60;110;180"
CPE_NAME="cpe:/o:fedoraproject:fedora:%[1]s"
HOME_URL="https://fedoraproject.org/"
BUG_REPORT_URL="https://bugzilla.redhat.com/"
VARIANT="Cloud Edition"
VARIANT_ID=cloud
`, rel)
	return []File{
		{Path: "/usr/lib/os-release", Mode: 0o644, Data: []byte(osRelease)},
		{Path: "/etc/os-release", Mode: fs.ModeSymlink | 0o777, Target: "../usr/lib/os-release"},
		{Path: "/etc/fedora-release", Mode: 0o644, Data: []byte("Fedora release " + rel + "\n")},
		{Path: "/etc/redhat-release", Mode: fs.ModeSymlink | 0o777, Target: "fedora-release"},
		{Path: "/etc/system-release", Mode: fs.ModeSymlink | 0o777, Target: "fedora-release"},
		{Path: "/etc/system-release-cpe", Mode: 0o644, Data: []byte("cpe:/o:fedoraproject:fedora:" + rel + "\n")},
	}
}

// fedoraRepoFiles are fedora-repos' files: Fedora's own mirrors,
// packages checked against the key fedora-gpg-keys installs. A build
// against the stand-in sets DIB_YUM_MINIMAL_BOOTSTRAP_REPOS, which
// yum-minimal puts over these and takes away at the end.
func fedoraRepoFiles() []File {
	var out []File
	for _, r := range []struct{ id, name, repo string }{
		{"fedora", "Fedora $releasever - $basearch", "fedora-$releasever"},
		{"updates", "Fedora $releasever - $basearch - Updates", "updates-released-f$releasever"},
	} {
		repo := fmt.Sprintf(`[%s]
name=%s
metalink=https://mirrors.fedoraproject.org/metalink?repo=%s&arch=$basearch
enabled=1
countme=1
metadata_expire=7d
repo_gpgcheck=0
type=rpm
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=False
`, r.id, r.name, r.repo)
		name := "fedora.repo"
		if r.id != "fedora" {
			name = "fedora-" + r.id + ".repo"
		}
		out = append(out, File{Path: "/etc/yum.repos.d/" + name, Mode: 0o644, Config: true, Data: []byte(repo)})
	}
	return out
}

// WriteFedoraRepos is WriteRepos for the Fedora stand-in of release
// rel: packages checked against the key at FedoraKeyPath.
func WriteFedoraRepos(dir, baseURL, rel string) error {
	return writeRepo(dir, "fedora", "Fedora $releasever (dibvm's stand-in)", baseURL, FedoraKeyPath(rel))
}

// writeRepo writes dir/dib-mirror-ID.repo, one repository at baseURL
// whose packages are checked against the key at keyPath.
func writeRepo(dir, id, name, baseURL, keyPath string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	repo := strings.Join([]string{
		"[" + id + "]", "name=" + name, "baseurl=" + baseURL, "enabled=1", "gpgcheck=1", "repo_gpgcheck=0",
		"gpgkey=file://" + keyPath, "",
	}, "\n")
	// dib-mirror-*.repo, as DIB's gate names its mirrors: yum-minimal's
	// cleanup removes files so named from the image and puts back the
	// distribution's own.
	return os.WriteFile(filepath.Join(dir, "dib-mirror-"+id+".repo"), []byte(repo), 0o644)
}
