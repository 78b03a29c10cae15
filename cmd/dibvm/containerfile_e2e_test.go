//go:build e2e

package main_test

import (
	"archive/tar"
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/internal/ocistandin"
)

// TestE2EContainerBuilds builds roots from Containerfiles with DIB
// 3.13's own containerfile and fedora-container elements, unchanged:
// containerfile's root.d runs podman build, run, export, rm and rmi,
// which in dibvm are the helper's container layer (buildah, RUN steps
// chrooted). The Containerfiles name docker.io/library/fedora, as DIB's
// fedora-container does; the user's registries.conf
// (CONTAINERS_REGISTRIES_CONF, lent to the build) sends that to a
// stand-in registry on loopback serving a base image the test
// assembles: the Fedora 41 root DIB's fedora-minimal builds against the
// Fedora stand-in repository (Debian's kernel, GRUB and sshd under
// Fedora's names), and a second layer that points its dnf at that
// repository, with whiteouts for Fedora's own repo files and a file
// with numeric owners no name has.
//
//   - containerfile, with a Containerfile of the user's whose COPY takes
//     a file from the build context and whose RUN installs with the
//     image's dnf, to a tar;
//   - fedora-container with block-device-efi, openssh-server and devuser,
//     to a disk image booted under OVMF and logged in to with OpenSSH;
//   - containerfile again, from a registry that now alters the layers it
//     serves: refused for the digest, nothing written.
func TestE2EContainerBuilds(t *testing.T) {
	needVM(t)
	base, repos := fedoraStandIn(t, true)
	fedora := buildFedoraMinimalTar(t, base, repos) + ".tar"
	repoHost, _ := url.Parse(base)

	// The base image's second layer: the stand-in's repository in place
	// of Fedora's mirrors, and a file owned by ids only numbers name.
	repoFile, err := os.ReadFile(filepath.Join(repos, "dib-mirror-fedora.repo"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(t.TempDir(), "overlay.tar")
	writeTar(t, overlay, []tarEntry{
		{name: "etc/yum.repos.d/dib-mirror-fedora.repo", body: string(repoFile)},
		{name: "etc/yum.repos.d/.wh.fedora.repo"},
		{name: "etc/yum.repos.d/.wh.fedora-updates.repo"},
		{name: "srv/owned-by-numbers", body: "1234:5678\n", uid: 1234, gid: 5678},
	})
	// The stand-in's userland is amd64's (fedoraStandIn).
	img, err := ocistandin.Image("amd64", fedora, overlay)
	if err != nil {
		t.Fatal(err)
	}
	reg := ocistandin.Serve(t)
	// 41 for the user's Containerfile; 34 is what DIB 3.13's
	// fedora-container names.
	for _, tag := range []string{"41", "34"} {
		digest, err := reg.Push(context.Background(), "library/fedora", tag, img)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the stand-in registry %s serves library/fedora:%s as %s", reg.Host, tag, digest)
	}

	dir := t.TempDir()
	registries := filepath.Join(dir, "registries.conf")
	writeFile(t, registries, "[[registry]]\nprefix = \"docker.io/library/fedora\"\n"+
		"location = \""+reg.Host+"/library/fedora\"\ninsecure = true\n")
	containerfile := filepath.Join(dir, "Containerfile")
	writeFile(t, containerfile, "FROM docker.io/library/fedora:41\n"+
		"COPY motd /etc/motd\n"+
		"RUN dnf install -y findutils && rpm -q findutils > /etc/findutils-installed\n"+
		"RUN touch /testfile\n")
	buildContext := filepath.Join(dir, "context")
	if err := os.Mkdir(buildContext, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(buildContext, "motd"), "built from a Containerfile\n")
	create := func(args ...string) []string {
		return append([]string{"create", "--allow-net", repoHost.Host, "--allow-net", reg.Host}, args...)
	}

	userEnv := []string{"ELEMENTS_PATH=" + upstreamElements(t, "containerfile"),
		"DIB_CONTAINER_FILE=" + containerfile, "DIB_CONTAINER_CONTEXT=" + buildContext,
		"CONTAINERS_REGISTRIES_CONF=" + registries}
	tree := func(out string) result {
		return dibvm(t, userEnv, 30*time.Minute, create("-n", "-t", "tar", "-o", out, "containerfile")...)
	}

	t.Run("containerfile", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "container")
		start := time.Now()
		r := tree(out)
		t.Logf("built from the Containerfile in %s", time.Since(start).Round(time.Second))
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 60))
		}
		files, owners := readTarOwners(t, out+".tar")
		if got := files["usr/lib/os-release"]; !strings.Contains(got, "ID=fedora\n") {
			t.Errorf("os-release: %q", got)
		}
		if got := files["etc/motd"]; got != "built from a Containerfile\n" {
			t.Errorf("etc/motd (COPY from the context): %q", got)
		}
		if got := files["etc/findutils-installed"]; !strings.HasPrefix(got, "findutils-") {
			t.Errorf("the RUN step's rpm -q findutils: %q", got)
		}
		if _, ok := files["testfile"]; !ok {
			t.Error("the RUN step's /testfile is not in the tree")
		}
		if got := owners["srv/owned-by-numbers"]; got != "1234:5678" {
			t.Errorf("srv/owned-by-numbers is owned by %q, want 1234:5678", got)
		}
		for _, f := range []string{"etc/yum.repos.d/fedora.repo", "etc/yum.repos.d/fedora-updates.repo"} {
			if _, ok := files[f]; ok {
				t.Errorf("%s is in the tree: the base image's whiteout removes it", f)
			}
		}
	})

	t.Run("fedora-container", func(t *testing.T) {
		priv, pub := loginKey(t)
		out := filepath.Join(t.TempDir(), "fedora.qcow2")
		log := filepath.Join(t.TempDir(), "build.log")
		env := []string{"ELEMENTS_PATH=" + upstreamElements(t, "fedora-container", "containerfile", "redhat-common", "rpm-distro", "yum"),
			"CONTAINERS_REGISTRIES_CONF=" + registries, "DIB_DEV_USER_AUTHORIZED_KEYS=" + pub}
		start := time.Now()
		r := dibvm(t, env, 40*time.Minute, create("--logfile", log, "-o", out,
			"fedora-container", "block-device-efi", "openssh-server", "devuser")...)
		t.Logf("built in %s", time.Since(start).Round(time.Second))
		if r.code != 0 {
			built, _ := os.ReadFile(log)
			t.Fatalf("exit %d\n%s\nthe build's log ends:\n%s", r.code, tail(r.stderr, 20), tail(string(built), 80))
		}
		check := `if test -d /sys/firmware/efi; then echo firmware=uefi; else echo firmware=bios; fi
echo "user=$(id -un)"
. /etc/os-release; echo "os=$ID $VERSION_ID"
echo "findutils=$(rpm -q findutils >/dev/null && echo installed)"
echo "kernel=$(rpm -q kernel >/dev/null && echo installed)"
echo "initramfs=$(ls /boot/initramfs-$(uname -r).img)"
echo "sshd=$(systemctl is-active sshd)"`
		loginAndCheck(t, priv, out, check, "firmware=uefi", "user=devuser", "os=fedora 41", "findutils=installed",
			"kernel=installed", "initramfs=/boot/initramfs-", "sshd=active")
	})

	t.Run("altered layers", func(t *testing.T) {
		if err := reg.TamperLayers(img); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "tampered")
		r := tree(out)
		if r.code == 0 {
			t.Fatal("a build from altered layers succeeded")
		}
		if !strings.Contains(r.stderr, "Digest did not match") {
			t.Errorf("the refusal does not name the digest:\n%s", tail(r.stderr, 30))
		}
		if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
			t.Errorf("a refused build left %d entries beside its output", len(entries))
		}
	})
}

type tarEntry struct {
	name, body string
	uid, gid   int
}

// writeTar writes entries as regular files, a layer's way: a name whose
// base starts .wh. is an OCI whiteout.
func writeTar(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Uid: e.uid, Gid: e.gid,
			Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
