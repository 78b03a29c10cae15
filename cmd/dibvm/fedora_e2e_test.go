//go:build e2e

package main_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/internal/rpmstandin"
)

// TestE2EFedoraMinimalTar builds Fedora 41 with DIB 3.13's own
// fedora-minimal, yum-minimal, redhat-common, rpm-distro and yum,
// unchanged, against a stand-in for Fedora's repository (see
// internal/rpmstandin: Fedora's release, repository and key packages,
// the names DIB's elements install there, Debian's userland), to a tar.
// yum-minimal's root.d downloads fedora-release-cloud,
// fedora-release-common, fedora-repos and fedora-gpg-keys and installs
// the package manager into the new root with the helper's dnf and rpm;
// the later phases run the root's own dnf in the chroot.
func TestE2EFedoraMinimalTar(t *testing.T) {
	needVM(t)
	base, repos := fedoraStandIn(t, false)
	out := buildFedoraMinimalTar(t, base, repos)
	files := readTar(t, out+".tar")
	if got := files["usr/lib/os-release"]; !strings.Contains(got, "ID=fedora\n") || !strings.Contains(got, "VERSION_ID=41\n") {
		t.Errorf("os-release: %q", got)
	}
	for _, f := range []string{"usr/bin/dnf", "usr/bin/rpm", "etc/yum.repos.d/fedora.repo", "etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-41-primary"} {
		if _, ok := files[f]; !ok {
			t.Errorf("the image has no %s", f)
		}
	}
	rpmdb := false
	for f := range files {
		rpmdb = rpmdb || strings.HasPrefix(f, "var/lib/rpm/") || strings.HasPrefix(f, "usr/lib/sysimage/rpm/")
		if strings.HasPrefix(f, "etc/yum.repos.d/dib-mirror") || strings.HasSuffix(f, ".USING_MIRROR") {
			t.Errorf("%s is in the image: yum-minimal's cleanup puts Fedora's own repositories back", f)
		}
	}
	if !rpmdb {
		t.Error("the image has no rpm database")
	}
}

// fedoraStandIn builds the stand-in for Fedora 41's repository (with a
// kernel, GRUB and sshd if bootable) and serves it on loopback: its URL,
// and the directory of repo files that name it.
func fedoraStandIn(t *testing.T, bootable bool) (base, repos string) {
	t.Helper()
	if err := rpmstandin.MissingTools(); err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	userland := rpmstandin.UserlandSpec{CacheDir: filepath.Join(cache, "dibvm", "test-rpmstandin-debs")}
	if bootable {
		userland.Packages = rpmstandin.BootableUserland("amd64")
		userland.Without = rpmstandin.BootableWithout
	}
	start := time.Now()
	repo, _, err := rpmstandin.Fedora(context.Background(), rpmstandin.FedoraSpec{
		Release: "41", Key: rpmstandin.NewKey(t, "Fedora stand-in"), Work: t.TempDir(), Userland: userland,
	}, filepath.Join(t.TempDir(), "fedora"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the stand-in repository took %s", time.Since(start).Round(time.Second))
	base = rpmstandin.Serve(t, repo.Dir)
	repos = filepath.Join(t.TempDir(), "yum.repos.d")
	if err := rpmstandin.WriteFedoraRepos(repos, base, "41"); err != nil {
		t.Fatal(err)
	}
	return base, repos
}

// buildFedoraMinimalTar builds Fedora 41 with DIB 3.13's fedora-minimal
// against the stand-in at base (repos naming it), to OUT.tar, and
// returns OUT.
func buildFedoraMinimalTar(t *testing.T, base, repos string) string {
	t.Helper()
	u, _ := url.Parse(base)
	out := filepath.Join(t.TempDir(), "fedora")
	upstream := upstreamElements(t, "fedora-minimal", "yum-minimal", "redhat-common", "rpm-distro", "yum")
	env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=41", "DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=" + repos}
	start := time.Now()
	r := dibvm(t, env, 40*time.Minute, "create", "--allow-net", u.Host, "-n", "-t", "tar", "-o", out, "fedora-minimal")
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	return out
}
