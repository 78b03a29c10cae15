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

// TestE2EOpenSUSEMinimalTar builds openSUSE Leap 15.6 with DIB 3.13's
// own opensuse-minimal, zypper-minimal and zypper, unchanged, against a
// stand-in for openSUSE's oss repository (see internal/rpmstandin), to a
// tar: zypper-minimal's root.d adds the repository DIB_ZYPPER_REPOS
// names with the helper's zypper, imports the key published beside its
// signed metadata and installs the new root with it; the later phases
// install with the root's own zypper in the chroot.
func TestE2EOpenSUSEMinimalTar(t *testing.T) {
	needVM(t)
	if err := rpmstandin.MissingTools(); err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	repo, _, err := rpmstandin.OpenSUSE(context.Background(), rpmstandin.OpenSUSESpec{
		Release: "15.6", Key: rpmstandin.NewKey(t, "openSUSE stand-in"), Work: t.TempDir(),
		Userland: rpmstandin.UserlandSpec{CacheDir: filepath.Join(cache, "dibvm", "test-rpmstandin-debs")},
	}, filepath.Join(t.TempDir(), "oss"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the stand-in repository took %s", time.Since(start).Round(time.Second))
	base := rpmstandin.Serve(t, repo.Dir)
	u, _ := url.Parse(base)

	out := filepath.Join(t.TempDir(), "opensuse")
	upstream := upstreamElements(t, "opensuse-minimal", "zypper-minimal", "zypper")
	env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=15.6", "DIB_ZYPPER_REPOS=oss=>" + base + "/"}
	start = time.Now()
	r := dibvm(t, env, 40*time.Minute, "create", "--allow-net", u.Host, "-n", "-t", "tar", "-o", out, "opensuse-minimal")
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 80))
	}
	files := readTar(t, out+".tar")
	if got := files["usr/lib/os-release"]; !strings.Contains(got, `ID="opensuse-leap"`) || !strings.Contains(got, `VERSION_ID="15.6"`) {
		t.Errorf("os-release: %q", got)
	}
	for _, f := range []string{"usr/bin/zypper", "usr/bin/rpm", "etc/zypp/repos.d/repo-oss.repo", "etc/locale.conf"} {
		if _, ok := files[f]; !ok {
			t.Errorf("the image has no %s", f)
		}
	}
	if got := files["etc/sysconfig/language"]; !strings.Contains(got, `RC_LANG="C.UTF-8"`) {
		t.Errorf("/etc/sysconfig/language: %q, want zypper-minimal's RC_LANG", got)
	}
	rpmdb := false
	for f := range files {
		rpmdb = rpmdb || strings.HasPrefix(f, "var/lib/rpm/") || strings.HasPrefix(f, "usr/lib/sysimage/rpm/")
	}
	if !rpmdb {
		t.Error("the image has no rpm database")
	}

	// A package changed after it was signed and indexed: zypper refuses
	// it in root.d, and nothing is written. (Packages signed by another
	// key, listed in metadata the repository's key signs, zypper takes:
	// by default it checks a package's own signature only where the
	// metadata is unsigned.)
	tampered, err := rpmstandin.TamperedCopy(repo, filepath.Join(t.TempDir(), "tampered"), rpmstandin.UserlandPackage)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		repo *rpmstandin.Repo
	}{{"tampered", tampered}} {
		t.Run(c.name, func(t *testing.T) {
			base := rpmstandin.Serve(t, c.repo.Dir)
			u, _ := url.Parse(base)
			dir := t.TempDir()
			env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=15.6", "DIB_ZYPPER_REPOS=oss=>" + base + "/"}
			r := dibvm(t, env, 30*time.Minute, "create", "--allow-net", u.Host, "-n", "-t", "tar", "-o", filepath.Join(dir, "opensuse"), "opensuse-minimal")
			if r.code == 0 {
				t.Fatalf("a build from the %s repository succeeded", c.name)
			}
			found := false
			for _, line := range strings.Split(r.stderr, "\n") {
				l := strings.ToLower(line)
				if !found && strings.Contains(l, "digest verification failed") {
					t.Logf("refused: %s", strings.TrimSpace(line))
					found = true
				}
			}
			if !found || !strings.Contains(r.stderr, "root.d") {
				t.Errorf("exit %d; want zypper's refusal in root.d\n%s", r.code, tail(r.stderr, 60))
			}
			if left := entries(t, dir); len(left) > 0 {
				t.Errorf("a failed build left %v", left)
			}
		})
	}
}
