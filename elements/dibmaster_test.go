package elements

import (
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
)

// dibMasterCommit is the commit of DIB master (openstack/diskimage-builder)
// that dibMasterFiles was read from, with
// git ls-tree -r --name-only COMMIT diskimage_builder/elements/NAME.
const dibMasterCommit = "ece6a6e98c588104c70fadbf4bf3d97770c239e6"

// dibMasterFiles are the files of DIB master's element of each name the
// built-in library has. A directory of DIB's test elements is one entry
// ending in "/" (its files are DIB's test data, run by make
// dib-functests from Debian's package, not shipped).
var dibMasterFiles = map[string][]string{
	"base": {
		"README.rst",
		"element-deps",
		"environment.d/10-base-defaults",
		"install.d/00-baseline-environment",
		"install.d/00-up-to-date",
		"install.d/10-cloud-init",
		"pkg-map",
		"pre-install.d/03-baseline-tools",
	},
	"block-device-efi": {
		"README.rst",
		"block-device-default.yaml",
		"element-provides",
		"environment.d/15-block-device.bash",
	},
	"block-device-efi-lvm": {
		"README.rst",
		"block-device-default.yaml",
		"element-provides",
		"environment.d/15-block-device.bash",
	},
	"block-device-gpt": {
		"README.rst",
		"block-device-default.yaml",
		"block-device-ppc64el.yaml",
		"element-provides",
		"environment.d/15-block-device.bash",
	},
	"block-device-mbr": {
		"README.rst",
		"block-device-default.yaml",
		"block-device-ppc64el.yaml",
		"element-provides",
		"environment.d/15-block-device.bash",
	},
	"bootloader": {
		"README.rst",
		"environment.d/10-bootloader-default-cmdline",
		"finalise.d/50-bootloader",
		"pkg-map",
	},
	"cache-url": {
		"README.rst",
		"__init__.py",
		"bin/cache-url",
		"element-deps",
		"package-installs.yaml",
		"pkg-map",
		"tests/__init__.py",
		"tests/test_cache_url.py",
	},
	"cloud-init-datasources": {
		"README.rst",
		"install.d/05-set-cloud-init-sources",
	},
	"debian": {
		"README.rst",
		"element-deps",
		"install.d/10-cloud-opinions",
		"package-installs.yaml",
		"test-elements/build-succeeds/",
	},
	"debian-minimal": {
		"README.rst",
		"element-deps",
		"element-provides",
		"environment.d/10-debian-minimal.bash",
		"package-installs.yaml",
		"root.d/75-debian-minimal-baseinstall",
		"test-elements/bookworm-arm64-build-succeeds/",
		"test-elements/bullseye-arm64-build-succeeds/",
	},
	"debootstrap": {
		"README.rst",
		"cleanup.d/99-clean-up-cache",
		"element-deps",
		"environment.d/10-debootstrap-default-locale",
		"environment.d/20-network-interface-names",
		"install.d/10-debian-networking",
		"install.d/12-debian-locale-gen",
		"install.d/15-cleanup-debootstrap",
		"package-installs.yaml",
		"pkg-map",
		"root.d/08-debootstrap",
	},
	"devuser": {
		"README.rst",
		"element-deps",
		"environment.d/50-devuser",
		"extra-data.d/50-devuser",
		"install.d/50-devuser",
		"package-installs.yaml",
		"pkg-map",
	},
	"dib-init-system": {
		"README.rst",
		"environment.d/99-dib-init-system",
		"install.d/20-install-init-scripts",
		"post-install.d/10-enable-init-scripts",
		"pre-install.d/04-dib-init-system",
	},
	"dkms": {
		"README.rst",
		"element-deps",
		"package-installs.yaml",
		"post-install.d/97-dkms",
	},
	"dpkg": {
		"README.rst",
		"bin/install-packages",
		"cleanup.d/40-unblock-daemons",
		"cleanup.d/50-remove-img-build-proxy",
		"cleanup.d/60-untrim-dpkg",
		"element-deps",
		"environment.d/10-dpkg.bash",
		"finalise.d/99-clean-up-cache",
		"finalise.d/99-write-dpkg-manifest",
		"pre-install.d/00-disable-apt-recommends",
		"pre-install.d/99-apt-get-update",
		"root.d/09-apt-keyring",
		"root.d/50-block-apt-translations",
		"root.d/50-block-daemons",
		"root.d/50-build-with-http-cache",
		"root.d/50-shared-apt-cache",
		"root.d/50-trim-dpkg",
	},
	"growroot": {
		"README.rst",
		"element-deps",
		"init-scripts/openrc/growroot",
		"init-scripts/systemd/growroot.service",
		"init-scripts/upstart/growroot.conf",
		"package-installs.yaml",
		"pkg-map",
		"post-install.d/80-growroot",
		"static/usr/local/sbin/growroot",
	},
	"install-bin": {
		"README.rst",
		"pre-install.d/01-install-bin",
	},
	"install-static": {
		"README.rst",
		"element-deps",
		"install.d/10-install-static-files",
		"package-installs.yaml",
		"pkg-map",
	},
	"install-types": {
		"README.rst",
		"extra-data.d/99-enable-install-types",
	},
	"manifests": {
		"README.rst",
		"cleanup.d/01-copy-manifests-dir",
		"environment.d/14-manifests",
		"extra-data.d/20-manifest-dir",
	},
	"modprobe": {
		"README.rst",
		"extra-data.d/50-modprobe-blacklist",
		"install.d/80-modprobe-blacklist",
	},
	"openssh-server": {
		"README.rst",
		"element-deps",
		"package-installs.yaml",
		"pkg-map",
		"post-install.d/80-enable-sshd-service",
		"post-install.d/99-harden-sshd-config",
	},
	"package-installs": {
		"README.rst",
		"__init__.py",
		"bin/package-installs",
		"bin/package-installs-squash",
		"bin/package-installs-v2",
		"bin/package-uninstalls",
		"element-deps",
		"extra-data.d/99-squash-package-install",
		"install.d/01-package-installs",
		"install.d/99-package-uninstalls",
		"post-install.d/00-package-installs",
		"post-install.d/95-package-uninstalls",
		"pre-install.d/10-package-installs",
		"pre-install.d/99-package-uninstalls",
		"tests/__init__.py",
		"tests/test_package_squash.py",
	},
	"pkg-map": {
		"README.rst",
		"bin/pkg-map",
		"extra-data.d/10-create-pkg-map-dir",
	},
	"runtime-ssh-host-keys": {
		"README.rst",
		"cleanup.d/90-remove-ssh-host-keys",
		"element-deps",
		"init-scripts/systemd/ssh-keygen.service",
		"init-scripts/upstart/ssh-keygen.conf",
		"package-installs.yaml",
		"pkg-map",
		"post-install.d/80-ssh-keygen",
		"static/usr/local/sbin/runtime-ssh-host-keys.sh",
	},
	"source-repositories": {
		"README.rst",
		"element-deps",
		"extra-data.d/98-source-repositories",
		"package-installs.yaml",
		"pkg-map",
	},
	"sysprep": {
		"README.rst",
		"bin/extract-image",
		"finalise.d/99-clear-machine-id",
	},
	"ubuntu": {
		"README.rst",
		"element-deps",
		"element-provides",
		"environment.d/99-cloud-init-datasources.bash",
		"package-installs.yaml",
		"pre-install.d/00-remove-apt-xapian-index",
		"pre-install.d/01-set-ubuntu-mirror",
		"root.d/10-cache-ubuntu-tarball",
		"test-elements/bionic-build-succeeds/",
		"test-elements/focal-build-succeeds/",
		"test-elements/jammy-build-succeeds/",
		"test-elements/noble-build-succeeds/",
		"test-elements/resolute-build-succeeds/",
		"test-elements/trusty-build-succeeds/",
		"test-elements/xenial-build-succeeds/",
	},
	"ubuntu-common": {
		"README.rst",
		"element-deps",
		"environment.d/10-ubuntu-distro-name.bash",
		"environment.d/11-ubuntu-init-system.bash",
		"install.d/80-disable-rfc3041",
		"post-install.d/99-autoremove",
	},
	"ubuntu-minimal": {
		"README.rst",
		"element-deps",
		"element-provides",
		"environment.d/11-ubuntu-kernel.bash",
		"environment.d/12-ubuntu-repo-dists.bash",
		"package-installs.yaml",
		"root.d/75-ubuntu-minimal-baseinstall",
		"test-elements/bionic-arm64-build-succeeds/",
		"test-elements/bionic-build-succeeds/",
		"test-elements/focal-arm64-build-succeeds/",
		"test-elements/focal-build-succeeds/",
		"test-elements/jammy-arm64-build-succeeds/",
		"test-elements/noble-arm64-build-succeeds/",
		"test-elements/resolute-arm64-build-succeeds/",
		"test-elements/trusty-build-succeeds/",
		"test-elements/xenial-build-succeeds/",
	},
	"vm": {
		"README.rst",
		"element-deps",
		"finalise.d/50-remove-bogus-udev-links",
	},
}

// dibFileExceptions are DIB master's files a built-in element does not
// have, each with why: an equivalent of dibvm's own, or what differs. A
// key is "element/path", or "element/dir/" for all of a directory.
var dibFileExceptions = map[string]string{
	"block-device-gpt/block-device-ppc64el.yaml": "not supported: the helper VM runs amd64 and arm64 only",
	"block-device-mbr/block-device-ppc64el.yaml": "not supported: the helper VM runs amd64 and arm64 only",

	"cache-url/__init__.py":                "DIB's Python package marker, for its unit tests",
	"cache-url/tests/":                     "DIB's Python unit tests of bin/cache-url",
	"cache-url/pkg-map":                    "maps curl for Red Hat and Gentoo only; dibvm builds Debian and Ubuntu",
	"devuser/pkg-map":                      "maps sudo for Gentoo only; dibvm builds Debian and Ubuntu",
	"install-static/element-deps":          "equivalent: install.d/10-install-static-files copies with cp, so needs no rsync package (nor package-installs for it)",
	"install-static/package-installs.yaml": "equivalent: install.d/10-install-static-files copies with cp, not rsync",
	"install-static/pkg-map":               "maps rsync for Gentoo only, and the built-in needs no rsync",

	"debian/test-elements/build-succeeds/":                        "DIB's functional test: make dib-functests runs it from Debian's package",
	"debian-minimal/test-elements/bookworm-arm64-build-succeeds/": "DIB's functional test: make dib-functests runs it from Debian's package",
	"debian-minimal/test-elements/bullseye-arm64-build-succeeds/": "DIB's functional test: make dib-functests runs it from Debian's package",
	"ubuntu/test-elements/":                                       "DIB's functional tests: they need Ubuntu's servers, which builds here cannot reach",
	"ubuntu-minimal/test-elements/":                               "DIB's functional tests: they need Ubuntu's servers, which builds here cannot reach",

	"dpkg/cleanup.d/50-remove-img-build-proxy": "equivalent: apt in the chroot reaches the network through http_proxy in its environment, so no apt.conf.d proxy file is written to remove",
	"dpkg/root.d/50-build-with-http-cache":     "equivalent: apt in the chroot uses http_proxy from its environment (dibvm's egress proxy, which caches)",
	"dpkg/root.d/50-shared-apt-cache":          "equivalent: dibvm's egress proxy keeps downloaded packages in the image cache on the host; DIB_APT_LOCAL_CACHE has no effect",

	"growroot/init-scripts/openrc/growroot":       "not supported: the built-in growroot refuses any init system but systemd (dibvm's systems boot systemd)",
	"growroot/init-scripts/upstart/growroot.conf": "not supported: the built-in growroot refuses any init system but systemd (dibvm's systems boot systemd)",

	"install-types/extra-data.d/99-enable-install-types": "equivalent: elements.MergeHooks links the chosen <prefix>-<type>-install directories (elements/installtypes) before the build",

	"package-installs/__init__.py":                 "DIB's Python package marker, for its unit tests",
	"package-installs/tests/":                      "DIB's Python unit tests of package-installs-squash",
	"package-installs/bin/package-installs-squash": "equivalent: the guest agent answers to package-installs-squash (guestagent/pkgtools)",
	"package-installs/bin/package-installs-v2":     "equivalent: the guest agent answers to package-installs-v2 (guestagent/pkgtools)",
	"package-installs/bin/package-installs":        "not supported: the v1 format, package-installs-* lists in phase directories, which no element of DIB master ships",
	"package-installs/bin/package-uninstalls":      "not supported: the v1 format, package-uninstalls-* lists in phase directories, which no element of DIB master ships",
	"pkg-map/bin/pkg-map":                          "equivalent: the guest agent answers to pkg-map (elements/pkgmap)",
	"sysprep/bin/extract-image":                    "not supported: it unpacks the Red Hat and SUSE cloud images; the built-in ubuntu element unpacks its own",
	"vm/finalise.d/50-remove-bogus-udev-links":     "not supported: it acts only when DISTRO_NAME is opensuse",
}

// TestBuiltinsHaveDIBMastersFiles holds every built-in element to DIB
// master's element of its name, file by file: each of DIB's files is in
// the built-in element at the same path, or an exception says why not.
func TestBuiltinsHaveDIBMastersFiles(t *testing.T) {
	lib, err := fs.Sub(builtinFS, "library")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range missingDIBFiles(lib, dibMasterFiles, dibFileExceptions) {
		t.Errorf("built-in %s lacks DIB master's file (commit %.12s): add it or an exception with the reason in dibFileExceptions and docs/dib-differences.md", p, dibMasterCommit)
	}
	names, err := fs.ReadDir(lib, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, ok := dibMasterFiles[n.Name()]; !ok && n.IsDir() {
			t.Errorf("built-in %s has no entry in dibMasterFiles: record DIB master's files of that element", n.Name())
		}
	}
}

// TestDIBFileExceptionsAreUsed keeps the exceptions true: each names a
// file of DIB's that the built-in element really lacks.
func TestDIBFileExceptionsAreUsed(t *testing.T) {
	lib, err := fs.Sub(builtinFS, "library")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, p := range missingDIBFiles(lib, dibMasterFiles, nil) {
		if k, ok := exceptionFor(p, dibFileExceptions); ok {
			used[k] = true
		}
	}
	for k := range dibFileExceptions {
		if !used[k] {
			t.Errorf("exception %q names no file the built-ins lack: remove it", k)
		}
	}
}

// TestMissingDIBFilesFindsARemovedHook proves the check fails on a gap:
// the library without modprobe's extra-data.d hook, which copies other
// elements' modprobe.d files (DIB's disable-nouveau relies on it).
func TestMissingDIBFilesFindsARemovedHook(t *testing.T) {
	lib, err := fs.Sub(builtinFS, "library")
	if err != nil {
		t.Fatal(err)
	}
	const gone = "modprobe/extra-data.d/50-modprobe-blacklist"
	trimmed := fstest.MapFS{}
	err = fs.WalkDir(lib, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == gone {
			return err
		}
		trimmed[p] = &fstest.MapFile{Mode: 0o755}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := missingDIBFiles(lib, dibMasterFiles, dibFileExceptions); len(got) != 0 {
		t.Fatalf("the whole library already lacks %v", got)
	}
	got := missingDIBFiles(trimmed, dibMasterFiles, dibFileExceptions)
	if len(got) != 1 || got[0] != gone {
		t.Errorf("without %s: missing %v, want just it", gone, got)
	}
}

// missingDIBFiles are the "element/path" of each of dib's files that lib
// lacks and that except does not excuse, sorted.
func missingDIBFiles(lib fs.FS, dib map[string][]string, except map[string]string) []string {
	var missing []string
	for element, files := range dib {
		for _, f := range files {
			p := element + "/" + f
			if _, ok := exceptionFor(p, except); ok || present(lib, p) {
				continue
			}
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	return missing
}

// present says whether lib has p: a file, or for a p ending in "/" a
// directory.
func present(lib fs.FS, p string) bool {
	fi, err := fs.Stat(lib, strings.TrimSuffix(p, "/"))
	return err == nil && fi.IsDir() == strings.HasSuffix(p, "/")
}

// exceptionFor is the key of except that excuses p: p itself, or a
// directory above it.
func exceptionFor(p string, except map[string]string) (string, bool) {
	for q := p; q != "." && q != "/"; q = path.Dir(strings.TrimSuffix(q, "/")) + "/" {
		if _, ok := except[q]; ok {
			return q, true
		}
		if !strings.Contains(strings.TrimSuffix(q, "/"), "/") {
			break
		}
	}
	return "", false
}
