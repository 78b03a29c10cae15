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

// centosStandIn builds and serves the CentOS Stream stand-in (see
// internal/rpmstandin: a signed repository shaped like BaseOS, holding
// Debian's userland) and writes the yum.repos.d directory a build gets
// in DIB_YUM_MINIMAL_BOOTSTRAP_REPOS.
func centosStandIn(t *testing.T) (repos, addr string) {
	t.Helper()
	if err := rpmstandin.MissingTools(); err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	key := rpmstandin.NewKey(t, "CentOS stand-in")
	repo, _, err := rpmstandin.CentOSStream(context.Background(), rpmstandin.CentOSStreamSpec{
		Key: key, Work: t.TempDir(),
		Userland: rpmstandin.UserlandSpec{CacheDir: filepath.Join(cache, "dibvm", "test-rpmstandin-debs")},
	}, filepath.Join(t.TempDir(), "baseos"))
	if err != nil {
		t.Fatal(err)
	}
	base := rpmstandin.Serve(t, repo.Dir)
	u, _ := url.Parse(base)
	repos = filepath.Join(t.TempDir(), "yum.repos.d")
	if err := rpmstandin.WriteRepos(repos, base); err != nil {
		t.Fatal(err)
	}
	return repos, u.Host
}

// TestE2ECentOSMinimalTar builds DIB's own centos-minimal (DIB 3.13's
// elements, unchanged) for CentOS Stream 9 against the stand-in: DIB's
// yum-minimal bootstraps the root with the helper's dnf and rpm, then
// the build goes on in the chroot with the root's own.
func TestE2ECentOSMinimalTar(t *testing.T) {
	needVM(t)
	repos, addr := centosStandIn(t)
	out := filepath.Join(t.TempDir(), "centos")
	// DIB's rpm elements as they are, beside dibvm's own of the names
	// dibvm has.
	upstream := upstreamElements(t, "centos-minimal", "yum-minimal", "redhat-common", "rpm-distro", "yum")
	env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=9-stream", "DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=" + repos}
	start := time.Now()
	r := dibvm(t, env, 40*time.Minute, "create", "--allow-net", addr, "-n", "-t", "tar", "-o", out, "centos-minimal")
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	files := readTar(t, out+".tar")
	if got := files["usr/lib/os-release"]; !strings.Contains(got, `ID="centos"`) && !strings.Contains(got, "ID=centos") {
		t.Errorf("os-release: %q", got)
	}
	for _, f := range []string{"usr/bin/dnf", "usr/bin/rpm", "etc/yum.repos.d/centos.repo", "etc/sysconfig/network"} {
		if _, ok := files[f]; !ok {
			t.Errorf("the image has no %s", f)
		}
	}
	// The packages rpm installed, in the database the image's own rpm reads.
	rpmdb := false
	for f := range files {
		rpmdb = rpmdb || strings.HasPrefix(f, "var/lib/rpm/") || strings.HasPrefix(f, "usr/lib/sysimage/rpm/")
	}
	if !rpmdb {
		t.Error("the image has no rpm database")
	}
	for f := range files {
		if strings.HasPrefix(f, "etc/yum.repos.d/dib-mirror") || strings.HasSuffix(f, ".USING_MIRROR") {
			t.Errorf("%s is in the image: yum-minimal's cleanup puts CentOS's own repositories back", f)
		}
	}
}
