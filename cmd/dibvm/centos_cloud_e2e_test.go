//go:build e2e

package main_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/internal/rpmstandin"
)

// TestE2ECentOSFromCloudImage builds with DIB's `centos` element (DIB
// 3.13's, unchanged), which starts from a distribution's cloud image
// rather than from packages, as the walk-through on CentOS 7's
// GenericCloud qcow2 does: given as DIB_LOCAL_IMAGE, the image is lent
// to the helper as a read-only disk, and DIB's extract-image converts
// it with qemu-img, maps its partitions with kpartx, mounts the XFS
// root nouuid and tars it into the new root. The cloud image is a
// stand-in the test makes: centos-minimal from the stand-in repository
// (see centosStandIn) on one XFS partition, as CentOS 7's images are
// laid out, with its repositories pointed at the stand-in and a mark
// only that image carries. The build adds a UEFI bootloader, sshd and a
// user, and the image boots under OVMF and takes an SSH login. A second
// build of the same elements and image, to another output type, does
// not extract the image again: it resumes from the tree its checkpoints
// kept. A third, to a tar, fetches the image from a server named by
// DIB_CLOUD_IMAGES instead.
func TestE2ECentOSFromCloudImage(t *testing.T) {
	needVM(t)
	repo, _ := buildCentOSStandIn(t, true)
	repos, addr := serveCentOSStandIn(t, repo)
	cloud := centosCloudImage(t, repos, addr)

	priv, pub := loginKey(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "centos.qcow2")
	log := filepath.Join(dir, "build.log")
	upstream := upstreamElements(t, "centos", "redhat-common", "rpm-distro", "yum")
	env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=9-stream", "DIB_LOCAL_IMAGE=" + cloud,
		"DIB_DEV_USER_AUTHORIZED_KEYS=" + pub, "DIBVM_CHECKPOINTS_DIR=" + t.TempDir()}
	elems := []string{"centos", "vm", "block-device-efi", "openssh-server", "devuser"}
	start := time.Now()
	r := dibvm(t, env, 40*time.Minute, append([]string{"create", "--allow-net", addr, "--logfile", log, "-o", img}, elems...)...)
	t.Logf("built from the cloud image in %s", time.Since(start).Round(time.Second))
	built, _ := os.ReadFile(log)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\nthe build's log ends:\n%s", r.code, tail(r.stderr, 20), tail(string(built), 80))
	}
	for _, want := range []string{"Repacking base image as tarball.", "Extracting base root image from "} {
		if !strings.Contains(string(built), want) {
			t.Errorf("the build's log has no %q: was the cloud image extracted?", want)
		}
	}

	check := `if test -d /sys/firmware/efi; then echo firmware=uefi; else echo firmware=bios; fi
echo "user=$(id -un)"
. /etc/os-release; echo "os=$ID $VERSION_ID"
echo "from=$(cat /etc/dibvm-cloud-image)"
echo "kernel=$(rpm -q kernel >/dev/null && echo installed)"
echo "esp=$(ls /boot/efi/EFI/centos/grub.cfg)"
echo "sshd=$(systemctl is-active sshd)"`
	loginAndCheck(t, priv, img, check, "firmware=uefi", "user=devuser", "os=centos 9", "from=the stand-in cloud image",
		"kernel=installed", "esp=/boot/efi/EFI/centos/grub.cfg", "sshd=active")

	// DIB's own centos and devuser elements run in the built image, as
	// customize opens it: centos's root.d (the extraction) does not run,
	// its package tools do, and devuser adds a second user from the
	// stand-in repository's packages.
	start = time.Now()
	custom := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=9-stream", "DIB_DEV_USER_USERNAME=another", "DIB_DEV_USER_AUTHORIZED_KEYS=" + pub}
	r = dibvm(t, custom, 20*time.Minute, "customize", "--allow-net", addr, img, "-o", filepath.Join(dir, "another.qcow2"), "centos", "devuser",
		"--", "sh", "-c", "id -un another && cat /home/another/.ssh/authorized_keys")
	t.Logf("customized with DIB's elements in %s", time.Since(start).Round(time.Second))
	key, _ := os.ReadFile(pub)
	if r.code != 0 || !strings.Contains(r.stderr, "not running the hooks that make them, of centos (root.d/10-centos-cloud-image)") ||
		!strings.Contains(r.stderr, "| another\n") || !strings.Contains(r.stderr, "| "+strings.TrimSpace(string(key))+"\n") {
		t.Errorf("customize with centos devuser: exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	os.Remove(filepath.Join(dir, "another.qcow2"))

	// The same elements and image to another type (and directory: the
	// image's name is an input, where it is written is not): the tree
	// comes from the checkpoints, and the image is not extracted again.
	log2 := filepath.Join(dir, "again.log")
	start = time.Now()
	r = dibvm(t, env, 40*time.Minute, append([]string{"create", "--allow-net", addr, "--logfile", log2, "-t", "raw", "-o", filepath.Join(t.TempDir(), "centos")}, elems...)...)
	t.Logf("built again in %s", time.Since(start).Round(time.Second))
	again, _ := os.ReadFile(log2)
	if r.code != 0 {
		t.Fatalf("the second build: exit %d\n%s", r.code, tail(r.stderr, 40))
	}
	if !strings.Contains(r.stdout+r.stderr+string(again), "resuming after post-install.d from checkpoint") {
		t.Errorf("the second build did not resume from the first's checkpoints:\n%s", tail(r.stderr, 40))
	}
	if strings.Contains(string(again), "Repacking base image") {
		t.Error("the second build extracted the cloud image again")
	}

	// Fetched rather than given: DIB_CLOUD_IMAGES names a server (a
	// stand-in for cloud.centos.org on the loopback) and the element's
	// cache-url downloads BASE_IMAGE_FILE through the egress proxy.
	images := rpmstandin.Serve(t, filepath.Dir(cloud))
	u, _ := url.Parse(images)
	fetched := filepath.Join(dir, "fetched")
	env = []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=9-stream", "DIB_CLOUD_IMAGES=" + images,
		"BASE_IMAGE_FILE=" + filepath.Base(cloud)}
	start = time.Now()
	r = dibvm(t, env, 40*time.Minute, "create", "--allow-net", addr, "--allow-net", u.Host, "-n", "-t", "tar", "-o", fetched, "centos")
	t.Logf("built from the fetched cloud image in %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		t.Fatalf("the build from DIB_CLOUD_IMAGES: exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	if files := readTar(t, fetched+".tar"); files["etc/dibvm-cloud-image"] != "the stand-in cloud image\n" {
		t.Errorf("the tree built from the fetched image has /etc/dibvm-cloud-image %q", files["etc/dibvm-cloud-image"])
	}
}

// centosCloudImage makes the stand-in for CentOS's GenericCloud image:
// centos-minimal from the stand-in repository, a kernel and GRUB in it,
// on one XFS partition, with the distribution's repository file naming
// the stand-in (where a real image names CentOS's mirrors) and
// /etc/dibvm-cloud-image, which only this image has.
func centosCloudImage(t *testing.T, repos, addr string) string {
	t.Helper()
	upstream := upstreamElements(t, "centos-minimal", "yum-minimal", "redhat-common", "rpm-distro", "yum")
	out := filepath.Join(t.TempDir(), "CentOS-Stream-GenericCloud-9-standin.x86_64")
	env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=9-stream", "DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=" + repos, "FS_TYPE=xfs"}
	start := time.Now()
	r := dibvm(t, env, 40*time.Minute, "create", "--allow-net", addr, "-t", "qcow2", "-o", out, "centos-minimal", "vm")
	t.Logf("the stand-in cloud image took %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		t.Fatalf("the stand-in cloud image: exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	repoFile, err := os.ReadFile(filepath.Join(repos, "dib-mirror-baseos.repo"))
	if err != nil {
		t.Fatal(err)
	}
	image := out + ".qcow2"
	r = dibvm(t, nil, 10*time.Minute, "customize", "--in-place", image, "--", "sh", "-c",
		`printf '%s' "$1" > /etc/yum.repos.d/centos.repo && echo "the stand-in cloud image" > /etc/dibvm-cloud-image`, "sh", string(repoFile))
	if r.code != 0 {
		t.Fatalf("customize the stand-in cloud image: exit %d\n%s", r.code, tail(r.stderr, 40))
	}
	return image
}
