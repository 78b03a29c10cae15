//go:build e2e

package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/internal/rpmstandin"
)

// TestE2ECentOSMinimalTar builds DIB's own centos-minimal (DIB 3.13's
// elements, unchanged) for CentOS Stream 9 against the stand-in: DIB's
// yum-minimal bootstraps the root with the helper's dnf and rpm, then
// the build goes on in the chroot with the root's own.
func TestE2ECentOSMinimalTar(t *testing.T) {
	needVM(t)
	repos, addr := centosStandIn(t, false)
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

// TestE2ECentOSRefusesForgedPackages builds centos-minimal against two
// forgeries of the stand-in: one whose userland rpm was changed after
// it was signed and indexed, and one whose packages are signed by a key
// the distribution's release package does not carry (its metadata
// re-indexed and consistent). Each build must stop where DIB's
// yum-minimal installs the root, say why, and write nothing.
func TestE2ECentOSRefusesForgedPackages(t *testing.T) {
	needVM(t)
	repo, key := buildCentOSStandIn(t, false)
	tampered, err := rpmstandin.TamperedCopy(repo, filepath.Join(t.TempDir(), "tampered"), rpmstandin.UserlandPackage)
	if err != nil {
		t.Fatal(err)
	}
	other := rpmstandin.NewKey(t, "Not CentOS")
	foreign, err := rpmstandin.ForeignSignedCopy(context.Background(), repo, filepath.Join(t.TempDir(), "foreign"), key, other)
	if err != nil {
		t.Fatal(err)
	}
	upstream := upstreamElements(t, "centos-minimal", "yum-minimal", "redhat-common", "rpm-distro", "yum")
	for _, c := range []struct {
		name string
		repo *rpmstandin.Repo
		want []string // any one of these in the build's output, in lower case
	}{
		{"tampered", tampered, []string{"checksum doesn't match"}},
		{"foreign-signed", foreign, []string{"gpg check failed", "is not installed. failing package is"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			repos, addr := serveCentOSStandIn(t, c.repo)
			dir := t.TempDir()
			out := filepath.Join(dir, "centos")
			log := filepath.Join(t.TempDir(), "build.log")
			env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=9-stream", "DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=" + repos}
			r := dibvm(t, env, 30*time.Minute, "create", "--allow-net", addr, "--logfile", log, "-n", "-t", "tar", "-o", out, "centos-minimal")
			if r.code == 0 {
				t.Fatalf("a build from the %s repository succeeded", c.name)
			}
			built, _ := os.ReadFile(log)
			said := r.stderr + "\n" + string(built)
			found := false
			for _, line := range strings.Split(said, "\n") {
				for _, w := range c.want {
					if !found && strings.Contains(strings.ToLower(line), w) {
						t.Logf("refused: %s", strings.TrimSpace(line))
						found = true
					}
				}
			}
			if !found || !strings.Contains(r.stderr, "root.d") {
				t.Errorf("exit %d; want the failure in root.d saying one of %q\n%s", r.code, c.want, tail(said, 60))
			}
			if left := entries(t, dir); len(left) > 0 {
				t.Errorf("a failed build left %v", left)
			}
		})
	}
}

// TestE2ECentOSBootsUEFIOnXFS builds the image TestCentOSUEFIOnXFS
// checks from the host, boots it under OVMF and logs in with OpenSSH's
// client as the dev user.
func TestE2ECentOSBootsUEFIOnXFS(t *testing.T) {
	needVM(t)
	img, priv := buildCentOSUEFIOnXFS(t)
	check := `if test -d /sys/firmware/efi; then echo firmware=uefi; else echo firmware=bios; fi
echo "user=$(id -un)"
echo "rootfs=$(findmnt -no FSTYPE /) bootfs=$(findmnt -no FSTYPE /boot)"
. /etc/os-release; echo "os=$ID $VERSION_ID"
echo "kernel=$(rpm -q kernel >/dev/null && echo installed)"
echo "initramfs=$(ls /boot/initramfs-$(uname -r).img)"
echo "esp=$(ls /boot/efi/EFI/centos/grub.cfg)"
echo "sshd=$(systemctl is-active sshd)"`
	loginAndCheck(t, priv, img, check, "firmware=uefi", "user=devuser", "rootfs=xfs bootfs=xfs", "os=centos 9", "kernel=installed",
		"initramfs=/boot/initramfs-", "esp=/boot/efi/EFI/centos/grub.cfg", "sshd=active")
}
