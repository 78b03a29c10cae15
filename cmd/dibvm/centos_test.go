package main_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/internal/rpmstandin"
)

// centosStandIn builds and serves the CentOS Stream stand-in (see
// internal/rpmstandin: a signed repository shaped like BaseOS, holding
// Debian's userland, with a kernel, GRUB and sshd if bootable) and
// writes the yum.repos.d directory a build gets in
// DIB_YUM_MINIMAL_BOOTSTRAP_REPOS.
func centosStandIn(t *testing.T, bootable bool) (repos, addr string) {
	t.Helper()
	repo, _ := buildCentOSStandIn(t, bootable)
	return serveCentOSStandIn(t, repo)
}

// buildCentOSStandIn builds the stand-in repository and returns it with
// the key that signed it.
func buildCentOSStandIn(t *testing.T, bootable bool) (*rpmstandin.Repo, *rpmstandin.Key) {
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
	key := rpmstandin.NewKey(t, "CentOS stand-in")
	start := time.Now()
	repo, _, err := rpmstandin.CentOSStream(context.Background(), rpmstandin.CentOSStreamSpec{
		Key: key, Work: t.TempDir(), Userland: userland,
	}, filepath.Join(t.TempDir(), "baseos"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the stand-in repository took %s", time.Since(start).Round(time.Second))
	return repo, key
}

// serveCentOSStandIn serves repo on the loopback and writes the
// yum.repos.d directory that names it.
func serveCentOSStandIn(t *testing.T, repo *rpmstandin.Repo) (repos, addr string) {
	t.Helper()
	base := rpmstandin.Serve(t, repo.Dir)
	u, _ := url.Parse(base)
	repos = filepath.Join(t.TempDir(), "yum.repos.d")
	if err := rpmstandin.WriteRepos(repos, base); err != nil {
		t.Fatal(err)
	}
	return repos, u.Host
}

// buildCentOSUEFIOnXFS builds CentOS Stream 9 with DIB's own
// centos-minimal, yum-minimal, redhat-common, rpm-distro and yum
// (DIB 3.13's, unchanged) against the stand-in, as a UEFI disk image
// laid out as CentOS's GenericCloud images are (/boot and the root on
// XFS), with openssh-server and a dev user whose key is priv. It
// returns the qcow2 image; the raw one and the lock file are beside it.
// The stand-in's packages are Debian's programs (its kernel, dracut,
// GRUB and sshd) under CentOS's names: what is checked is that DIB's
// rpm path and dibvm's bootloader make of them an image that boots, not
// CentOS's own binaries.
func buildCentOSUEFIOnXFS(t *testing.T) (img, priv string) {
	t.Helper()
	repos, addr := centosStandIn(t, true)
	priv, pub := loginKey(t)
	out := filepath.Join(t.TempDir(), "centos")
	log := filepath.Join(t.TempDir(), "build.log")
	upstream := upstreamElements(t, "centos-minimal", "yum-minimal", "redhat-common", "rpm-distro", "yum")
	env := []string{"ELEMENTS_PATH=" + upstream, "DIB_RELEASE=9-stream", "DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=" + repos,
		"DIB_BLOCK_DEVICE_CONFIG=" + genericCloudLayout, "DIB_DEV_USER_AUTHORIZED_KEYS=" + pub}
	start := time.Now()
	r := dibvm(t, env, 40*time.Minute, "create", "--allow-net", addr, "--logfile", log, "-t", "qcow2,raw", "-o", out,
		"centos-minimal", "vm", "block-device-efi", "openssh-server", "devuser")
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		built, _ := os.ReadFile(log)
		t.Fatalf("exit %d\n%s\nthe build's log ends:\n%s", r.code, tail(r.stderr, 20), tail(string(built), 80))
	}
	checkRPMLock(t, out+".lock", "http://"+addr)
	return out + ".qcow2", priv
}

// TestCentOSUEFIOnXFS builds CentOS Stream 9 from DIB's rpm elements
// (see buildCentOSUEFIOnXFS) and checks the image from the host: the
// GenericCloud layout, the ESP holding CentOS's GRUB configuration,
// /boot and the root on XFS; and the lock file names every package with
// the rpm it came from.
// TestE2ECentOSBootsUEFIOnXFS (make e2e-full) boots it.
func TestCentOSUEFIOnXFS(t *testing.T) {
	needVM(t)
	img, _ := buildCentOSUEFIOnXFS(t)
	raw := strings.TrimSuffix(img, ".qcow2") + ".raw"
	parts := readPartitions(t, raw).PartitionTable.Partitions
	var types []string
	for _, p := range parts {
		types = append(types, blkid(t, extract(t, raw, p.Start, p.Size), "TYPE"))
	}
	if !slices.Equal(types, []string{"", "vfat", "xfs", "xfs"}) {
		t.Fatalf("the partitions' filesystems are %q: want the BIOS boot partition, the ESP, then /boot and the root on XFS", types)
	}
	esp := extract(t, raw, parts[1].Start, parts[1].Size)
	cmd := exec.Command(tool(t, "mtype", "mtools"), "-i", esp, "::/EFI/centos/grub.cfg")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) == 0 {
		t.Errorf("the ESP's EFI/centos/grub.cfg: %v\n%s", err, out)
	}
}

// loginAndCheck boots img with dibvm boot (TCG, the firmware the image
// asks for), logs in over SSH with the key priv, runs check there, and
// wants each of want in what it prints.
func loginAndCheck(t *testing.T, priv, img, check string, want ...string) {
	t.Helper()
	start := time.Now()
	r := dibvm(t, nil, 20*time.Minute, "boot", "--accel", "tcg", "--network", "restricted", "-i", priv, img, "--", "sh", "-c", check)
	t.Logf("booted and logged in in %s", time.Since(start).Round(time.Second))
	if r.code != 0 {
		t.Fatalf("dibvm boot -- checks: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, tail(r.stderr, 60))
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("the booted image says\n%s\nwant %q", r.stdout, w)
		}
	}
}

// loginKey is an ed25519 key pair made with OpenSSH's ssh-keygen, the
// public half readable by the build's user.
func loginKey(t *testing.T) (priv, pub string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "dibvm-login-key-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	priv = filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command(tool(t, "ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-C", "dibvm-test", "-f", priv).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	os.Chmod(priv+".pub", 0o644)
	return priv, priv + ".pub"
}
