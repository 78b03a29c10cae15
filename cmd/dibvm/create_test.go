package main_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements/elementtest"
)

// A user's element, the way DIB users write them, runs every phase with
// DIB's environment, outside and inside the chroot.
func TestCreateRunsUserElement(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "out", "img")
	dir, env := runDir(t)
	// The caller's own settings reach the hooks as in DIB, and override
	// an environment.d default; secret-shaped ones do not.
	env = append(env, "ELEMENTS_PATH="+testElements(t), "DIB_USER_SETTING=from the host",
		"COLOUR=magenta", "FOO_SETTING=from-caller", "GITHUB_TOKEN=ghp_not_for_hooks")
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "user-element")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	files := readTar(t, out+".tar")
	for name, want := range map[string]string{
		"etc/user-root-d":         "root.d: hello from environment.d, from the host\n",
		"etc/user-install-d":      "install.d: hello from environment.d\n50-read-in-target\nhooks read-only\nuid 0 on x86_64\n",
		"etc/user-post-install-d": "post-install.d ran\n",
		"etc/user-finalise-d":     "finalise.d ran\n",
		"etc/user-cleanup-d":      "cleanup.d ran outside\n",
		"etc/user-root-env":       "magenta from-caller unset\n",
		"etc/user-install-env":    "magenta from-caller unset\n",
	} {
		if got, ok := files[name]; !ok || got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, ok := files["tmp/left-in-tmp"]; ok {
		t.Error("/tmp of the image was not emptied")
	}
	if !strings.Contains(r.stdout, "not passed to the hooks") || !strings.Contains(r.stdout, "GITHUB_TOKEN") || strings.Contains(r.stdout+r.stderr, "ghp_not_for_hooks") {
		t.Errorf("the log does not name the withheld GITHUB_TOKEN, or shows its value:\n%s", r.stdout)
	}
	for _, s := range []string{"Target: install.d", "dib-run-parts Running /tmp/in_target.d/install.d/50-read-in-target", "Image file " + out + ".tar created"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if left := entries(t, dir); len(left) > 0 {
		t.Errorf("left behind in the runtime dir: %v", left)
	}
	// A second build moves the first image aside, as DIB does; with
	// --checksum, sums that sha256sum and md5sum accept sit beside it.
	r = dibvm(t, env, 10*time.Minute, "create", "-n", "--checksum", "-t", "tar", "-o", out, "user-element")
	if r.code != 0 {
		t.Fatalf("second build: exit %d\n%s", r.code, r.stderr)
	}
	aside, _ := filepath.Glob(out + ".tar-*")
	if len(aside) != 1 {
		t.Errorf("want the old image moved aside, found %v", aside)
	}
	for _, check := range []string{"sha256sum", "md5sum"} {
		ext := map[string]string{"sha256sum": ".sha256", "md5sum": ".md5"}[check]
		cmd := exec.Command(check, "-c", filepath.Base(out)+".tar"+ext)
		cmd.Dir = filepath.Dir(out)
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -c: %v\n%s", check, err, o)
		}
	}
}

// A failing hook gives one error block naming the element, phase and
// script, its status and its last lines, and leaves nothing behind.
func TestCreateHookFailure(t *testing.T) {
	needVM(t)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "img")
	dir, env := runDir(t)
	env = append(env, "ELEMENTS_PATH="+testElements(t))
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "failing-element")
	if r.code == 0 {
		t.Fatal("a failing hook reported success")
	}
	for _, want := range []string{
		"element: failing-element", "phase:   install.d", "script:  50-fail", "status:  exit status 3",
		"about to fail", "step 3", "something went wrong",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error block lacks %q:\n%s", want, r.stderr)
		}
	}
	noPanic(t, r)
	if left := entries(t, outDir); len(left) > 0 {
		t.Errorf("left in the output directory: %v", left)
	}
	if left := entries(t, dir); len(left) > 0 {
		t.Errorf("left in the runtime dir: %v", left)
	}
	waitNoQEMU(t, dir, 2*time.Second)
}

// A release the mirror does not have is known only in the guest, where
// the mirror is reached: the build fails in its first minute, naming the
// settings, not in debootstrap's words.
func TestCreateUnknownRelease(t *testing.T) {
	needVM(t)
	outDir := t.TempDir()
	dir, env := runDir(t)
	env = append(env, "DIB_RELEASE=nosuchrelease")
	r := dibvm(t, env, 10*time.Minute, "create", "-t", "tar", "-o", filepath.Join(outDir, "img"), "debian-minimal")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"DIB_RELEASE=nosuchrelease: the mirror http://deb.debian.org/debian (DIB_DISTRIBUTION_MIRROR) has no",
		"dists/nosuchrelease/InRelease or Release", "script:  08-debootstrap"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "Failed getting release file") {
		t.Errorf("debootstrap ran:\n%s", r.stderr)
	}
	t.Logf("failed after %s", r.took.Round(time.Second))
	if left := entries(t, outDir); len(left) > 0 {
		t.Errorf("left in the output directory: %v", left)
	}
	waitNoQEMU(t, dir, 2*time.Second)
}

// SIGTERM, and separately --timeout, stop a build: no QEMU, no run
// directory, nothing at the output path.
func TestCreateStopsOnSignalAndTimeout(t *testing.T) {
	needVM(t)
	for _, how := range []string{"SIGTERM", "timeout"} {
		t.Run(how, func(t *testing.T) {
			outDir := t.TempDir()
			dir, env := runDir(t)
			args := []string{"create", "-n", "-t", "tar", "-o", filepath.Join(outDir, "img"), "slow-element"}
			if how == "timeout" {
				args = append(args, "--timeout", "40s")
			}
			cmd := exec.Command(dibvmBin, args...)
			store := t.TempDir()
			cmd.Env = append(append(os.Environ(), env...), "ELEMENTS_PATH="+testElements(t), "DIBVM_CHECKPOINTS_DIR="+store)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			sleeping := make(chan struct{})
			go func() {
				b := make([]byte, 4096)
				var seen strings.Builder
				for {
					n, err := stdout.Read(b)
					seen.Write(b[:n])
					if strings.Contains(seen.String(), "sleeping for a long time") {
						close(sleeping)
						io.Copy(io.Discard, stdout)
						return
					}
					if err != nil {
						return
					}
				}
			}()
			select {
			case <-sleeping:
			case <-time.After(5 * time.Minute):
				t.Fatalf("the slow hook never started\n%s", stderr.String())
			}
			if how == "SIGTERM" {
				cmd.Process.Signal(syscall.SIGTERM)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("the stopped build reported success")
				}
			case <-time.After(3 * time.Minute):
				t.Fatal("dibvm did not stop")
			}
			want := map[string]string{"SIGTERM": "stopped by a signal", "timeout": "longer than --timeout 40s"}[how]
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
			}
			waitNoQEMU(t, dir, 2*time.Second)
			if left := entries(t, dir); len(left) > 0 {
				t.Errorf("left in the runtime dir: %v", left)
			}
			if left := entries(t, outDir); len(left) > 0 {
				t.Errorf("left in the output directory: %v", left)
			}
			// The checkpoints made before the stop stay; the layer the
			// build was writing goes.
			layers, _ := filepath.Glob(filepath.Join(store, "*.qcow2"))
			metas, _ := filepath.Glob(filepath.Join(store, "*.json"))
			if len(metas) == 0 || len(layers) != len(metas) {
				t.Errorf("in the checkpoint store after the stop: %d layers for %d checkpoints, want as many, and some", len(layers), len(metas))
			}
		})
	}
}

// -p installs with the image's install-packages after install.d; an
// image without one fails clearly.
func TestCreateExtraPackagesNeedInstallPackages(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIB_USER_SETTING=x"}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-p", "vim,curl", "-o", out, "user-element")
	if r.code == 0 {
		t.Fatal("-p succeeded on an image without install-packages")
	}
	for _, want := range []string{"script:  install-packages (-p)", "status:  exit status 127", "no install-packages command"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestCreateRejectsBadInputBeforeBooting(t *testing.T) {
	// A QEMU that only records that it was started.
	dir := t.TempDir()
	started := filepath.Join(dir, "qemu-started")
	fake := filepath.Join(dir, "qemu")
	os.WriteFile(fake, []byte("#!/bin/sh\ntouch "+started+"\nexit 1\n"), 0o755)
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIBVM_QEMU=" + fake, "DIBVM_QEMU_ARM64=" + fake, "DIBVM_QEMU_AMD64=" + fake}
	foreignArch := "arm64"
	if runtime.GOARCH == "arm64" {
		foreignArch = "amd64"
	}
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"create", "-t", "tar", "-o", "x", "nosuch-element"}, nil, "element nosuch-element not found"},
		// -c: the caller's ELEMENTS_PATH no longer counts.
		{[]string{"create", "-c", "-t", "tar", "-o", "x", "tiny-os"}, nil, "element tiny-os not found"},
		{[]string{"create", "-t", "iso9660", "-o", "x", "tiny-os"}, nil, "-t iso9660: this dibvm cannot write that type yet"},
		{[]string{"create", "-a", "sparc", "-t", "tar", "tiny-os"}, nil, "-a sparc"},
		{[]string{"create", "-t", "tar", "tiny-os"}, []string{"ARCH=sparc"}, "-a sparc"},
		{[]string{"create", "-a", "aarch64", "-n", "-t", "raw", "-o", "x", "tiny-os", "bootloader", "block-device-mbr"}, nil,
			"-a arm64: arm64 images boot by UEFI only, and this disk layout has no EFI system partition"},
		{[]string{"create", "-a", foreignArch, "--accel", "kvm", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"DIBVM_KVM_DEVICE=/dev/null"},
			"the helper VM is " + foreignArch + " (the image's architecture, or --arch)"},
		{[]string{"create", "--network", "wifi", "tiny-os"}, nil, `--network "wifi"`},
		{[]string{"create", "-n", "-t", "qcow2", "-o", "x", "tiny-os"}, nil, "a disk image needs a block device layout"},
		{[]string{"create", "-n", "-t", "raw", "-o", "x", "tiny-os", "block-device-mbr"}, []string{"DIB_BLOCK_DEVICE_CONFIG=- mdraid: {name: x}"},
			"DIB_BLOCK_DEVICE_CONFIG: mdraid: dibvm does not support this block device node yet"},
		{[]string{"create", "-n", "-t", "raw", "-o", "x", "tiny-os"}, []string{"DIB_BLOCK_DEVICE_CONFIG=" + strings.Replace(lvmConfig, "name: lv-var\n        base: vg_tiny", "name: lv-var\n        base: vg_other", 1)},
			`DIB_BLOCK_DEVICE_CONFIG: lvm: lv lv-var: base "vg_other" names no vg`},
		// A layout cannot point LVM at the helper's other disks.
		{[]string{"create", "-n", "-t", "raw", "-o", "x", "tiny-os"}, []string{"DIB_BLOCK_DEVICE_CONFIG=" + strings.Replace(lvmConfig, `options: [ "--force" ]`, `options: [ "--force", "/dev/vdb" ]`, 1)},
			`DIB_BLOCK_DEVICE_CONFIG: lvm: pv pv: options: "/dev/vdb" names a path`},
		{[]string{"create", "-n", "-t", "raw", "--image-size", "20", "-o", "x", "tiny-os", "block-device-efi-lvm"}, nil,
			"element block-device-efi-lvm: block-device-default.yaml with --image-size 20 (or DIB_IMAGE_SIZE): partition root on a 20480 MiB image"},
		{[]string{"create", "-n", "-t", "raw", "--scratch-size", "20G", "-o", "x", "tiny-os", "block-device-efi-lvm"}, nil,
			"--scratch-size 20480M cannot hold this layout's fixed-size partitions (38704 MiB)"},
		{[]string{"create", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"break=before-instal"}, "break=before-instal: unknown phase"},
		{[]string{"create", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"DIB_IMAGE_SIZE=big"}, "DIB_IMAGE_SIZE=big (for --image-size)"},
		{[]string{"create", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"DIB_CHECKSUM=sha1"}, "DIB_CHECKSUM=sha1: want 1, or md5 and/or sha256"},
		{[]string{"create", "-n", "-t", "raw", "-o", "x", "tiny-os", "block-device-mbr"}, []string{"FS_TYPE=btrfs"}, "FS_TYPE=btrfs: the root filesystem can be"},
		{[]string{"create", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"DIB_APT_KEYRING=/nonexistent/mirror.gpg"},
			"DIB_APT_KEYRING=/nonexistent/mirror.gpg (the keyring debootstrap and apt check the mirror with): no such file or directory here"},
		{[]string{"create", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"DIB_LOCAL_IMAGE=" + dir},
			"DIB_LOCAL_IMAGE=" + dir + " (the image the ubuntu element builds from instead of downloading one): not a regular file"},
		// A setting naming the host's loopback, which --allow-net does not
		// open (or opens on another port): the build could never reach it.
		{[]string{"create", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"DIB_DISTRIBUTION_MIRROR=http://127.0.0.1:3142/debian"},
			"DIB_DISTRIBUTION_MIRROR names 127.0.0.1:3142, a service on this host's loopback, which the helper VM reaches only when it is opened: add --allow-net 127.0.0.1:3142"},
		{[]string{"create", "--allow-net", "127.0.0.1:3142", "-n", "-t", "tar", "-o", "x", "tiny-os"}, []string{"DIB_PYPI_MIRROR_URL=http://localhost:3141/root/pypi"},
			"DIB_PYPI_MIRROR_URL names 127.0.0.1:3141, a service on this host's loopback"},
		{[]string{"create", "-t", "tar", "-o", "x", "ubuntu"}, []string{"DIB_UBUNTU_CLOUD_KEYRING=" + fake},
			"DIB_UBUNTU_CLOUD_KEYRING=" + fake + ": not an OpenPGP keyring"},
	} {
		cenv := append(append([]string{}, env...), c.env...)
		r := dibvm(t, cenv, time.Minute, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("dibvm %v: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.want)
		}
		if _, err := os.Stat(started); err == nil {
			t.Errorf("dibvm %v started QEMU: bad input must fail before the VM boots", c.args)
			os.Remove(started)
		}
	}
}

// A file a DIB setting names on the host reaches the hooks: a small one
// (DIB_DEV_USER_AUTHORIZED_KEYS) as a copy, a large one (DIB_LOCAL_IMAGE)
// lent as a disk the guest can read and not write.
func TestCreateCarriesHostFiles(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "authorized_keys")
	os.WriteFile(keys, []byte("ssh-ed25519 AAAAC3Nz test@host\n"), 0o644)
	local := filepath.Join(dir, "local,image.img") // a comma, which QEMU's options escape
	image := bytes.Repeat([]byte("the local image "), 100000)
	os.WriteFile(local, image, 0o644)
	out := filepath.Join(t.TempDir(), "img")
	_, env := runDir(t)
	env = append(env, "ELEMENTS_PATH="+testElements(t), "DIB_DEV_USER_AUTHORIZED_KEYS="+keys, "DIB_LOCAL_IMAGE="+local)
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "tiny-os", "host-files-reader")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 30))
	}
	files := readTar(t, out+".tar")
	for name, want := range map[string]string{
		"etc/authorized-keys-copy": "ssh-ed25519 AAAAC3Nz test@host\n",
		"etc/local-image-head":     string(image[:32]),
		"etc/local-image-name":     "local,image.img\n", // named as on the host: DIB's hooks take names from it
		"etc/local-image-write":    "refused\n",
	} {
		if files[name] != want {
			t.Errorf("%s: %q, want %q", name, files[name], want)
		}
	}
	if got, _ := os.ReadFile(local); !bytes.Equal(got, image) {
		t.Error("the guest changed the lent image")
	}
}

// The version is semantic, and names the commit make built from.
func TestCreateVersion(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v (the test runs in a git checkout, as make builds from one)", err)
	}
	want := regexp.QuoteMeta(strings.TrimSpace(string(head)))
	for _, args := range [][]string{{"--version"}, {"create", "--version"}, {"disk-image-create", "--version"}} {
		r := dibvm(t, nil, time.Minute, args...)
		if !regexp.MustCompile(`^(dibvm version )?\d+\.\d+\.\d+ \(commit `+want+`(\+dirty)?, go1\.\d+`).MatchString(r.stdout) || r.code != 0 {
			t.Errorf("dibvm %v: exit %d, %q, want the version and commit %s", args, r.code, r.stdout, head)
		}
	}
}

// tgz, docker and squashfs come from the built tree: the guest's tar,
// gzipped or as it is, and a squashfs the guest made.
func TestCreateTreeOutputs(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "tree")
	// An element that writes a manifest, which lands in <name>.d/.
	mine := elementtest.WriteTree(t, map[string]string{
		"manifest-writer/element-deps":        "manifests\n",
		"manifest-writer/finalise.d/50-note*": "#!/bin/sh\necho noted > \"$DIB_MANIFEST_IMAGE_DIR/my-manifest\"\n",
	})
	// Settings as DIB takes them: DIB_CHECKSUM from the environment, and
	// --logfile, which takes the build's output off the terminal.
	env := []string{"ELEMENTS_PATH=" + testElements(t) + ":" + mine, "DIB_USER_SETTING=trees", "DIB_CHECKSUM=sha256"}
	logfile := filepath.Join(t.TempDir(), "build.log")
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar,tgz,docker,squashfs", "-o", out,
		"--docker-target", "my/image:1", "--logfile", logfile, "user-element", "manifest-writer")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	logged, err := os.ReadFile(logfile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.stdout, "Target: root.d") || !strings.Contains(string(logged), "Target: root.d") {
		t.Errorf("with --logfile the build's output goes to the file alone; stdout:\n%s", r.stdout)
	}
	for _, ext := range []string{".tar", ".tgz", ".docker.tar", ".squash"} {
		if !fileExists(out + ext + ".sha256") {
			t.Errorf("DIB_CHECKSUM=sha256: no %s.sha256", out+ext)
		}
		if fileExists(out + ext + ".md5") {
			t.Errorf("DIB_CHECKSUM=sha256 wrote %s.md5 too", out+ext)
		}
	}
	tarball, err := os.ReadFile(out + ".tar")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out + ".tgz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("tgz: %v", err)
	}
	if unzipped, err := io.ReadAll(zr); err != nil || !bytes.Equal(unzipped, tarball) {
		t.Errorf("the tgz is not the tar gzipped (%d vs %d bytes, %v)", len(unzipped), len(tarball), err)
	}
	if got := readTar(t, out+".docker.tar")["etc/user-root-d"]; got != "root.d: hello from environment.d, trees\n" {
		t.Errorf("docker tarball: etc/user-root-d = %q", got)
	}
	if !strings.Contains(string(logged), "docker import "+out+".docker.tar my/image:1") {
		t.Errorf("no docker import line in the output:\n%s", logged)
	}
	list, err := exec.Command(tool(t, "unsquashfs", "squashfs-tools"), "-l", out+".squash").CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -l: %v\n%s", err, list)
	}
	if !strings.Contains(string(list), "squashfs-root/etc/user-root-d") {
		t.Errorf("the squashfs lacks etc/user-root-d:\n%s", list)
	}
	if got, err := os.ReadFile(filepath.Join(out+".d", "my-manifest")); string(got) != "noted\n" {
		t.Errorf("manifest in %s.d: %q %v", out, got, err)
	}
}

// cache-url downloads through the helper's proxy into DIB_IMAGE_CACHE,
// revalidates what it has on a second call, and exits 44 on a 404.
func TestCreateCacheURL(t *testing.T) {
	needVM(t)
	mine := elementtest.WriteTree(t, map[string]string{
		"fetcher/element-deps":            "cache-url\n",
		"fetcher/environment.d/10-distro": "export DISTRO_NAME=debian\n",
		// tiny-os has no package manager: this one notes what it is asked.
		// install-bin needs install(1) and a root user.
		"fetcher/root.d/50-stub*": `#!/bin/bash
set -eu
echo 'root:x:0:0:root:/root:/bin/sh' > "$TARGET_ROOT/etc/passwd"
echo 'root:x:0:' > "$TARGET_ROOT/etc/group"
mkdir -p "$TARGET_ROOT/usr/local/bin"
printf '#!/bin/sh\necho "install-packages stub: $*"\n' > "$TARGET_ROOT/usr/bin/install-packages"
chmod 755 "$TARGET_ROOT/usr/bin/install-packages"
p=$(command -v install)
cp "$p" "$TARGET_ROOT/usr/bin/"
for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
    mkdir -p "$TARGET_ROOT$(dirname "$lib")"
    [ -e "$TARGET_ROOT$lib" ] || cp "$lib" "$TARGET_ROOT$lib"
done
`,
		"fetcher/extra-data.d/50-fetch*": "#!/bin/bash\nset -eu\n" +
			"url=http://deb.debian.org/debian/dists/stable/Release\n" +
			"\"$TMP_HOOKS_PATH/bin/cache-url\" \"$url\" \"$DIB_IMAGE_CACHE/release\"\n" +
			"\"$TMP_HOOKS_PATH/bin/cache-url\" \"$url\" \"$DIB_IMAGE_CACHE/release\"\n" +
			"cp \"$DIB_IMAGE_CACHE/release\" \"$TMP_MOUNT_PATH/etc/release\"\n" +
			"if \"$TMP_HOOKS_PATH/bin/cache-url\" http://deb.debian.org/debian/no-such-file \"$DIB_IMAGE_CACHE/x\"; then exit 1; else echo \"missing: $?\"; fi\n",
	})
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t) + ":" + mine}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "tiny-os", "fetcher")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := readTar(t, out+".tar")["etc/release"]; !strings.HasPrefix(got, "Origin: Debian") {
		t.Errorf("etc/release = %.60q", got)
	}
	for _, s := range []string{"Downloaded and cached http://deb.debian.org/debian/dists/stable/Release for the first time",
		// The second call revalidates (whether the mirror answers 304 is
		// up to the mirror).
		"Server copy has", "missing: 44", "install-packages stub: curl"} {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("output lacks %q:\n%s", s, r.stdout)
		}
	}
}
