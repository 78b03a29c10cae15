//go:build e2e

package main_test

// The end-to-end builds of real Debian images take many minutes under
// TCG, so they run with `make e2e` rather than `make test`.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/sha256sum"
)

func TestE2EDebianMinimalTree(t *testing.T) {
	out := filepath.Join(t.TempDir(), "deb")
	sourcesEnv, lists := debianSources(t)
	r := dibvm(t, sourcesEnv, 60*time.Minute, "create", "-n", "-t", "tar", "-o", out, "debian-minimal")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	files := readTar(t, out+".tar")
	osRelease := files["usr/lib/os-release"]
	if !strings.Contains(osRelease, `ID=debian`) {
		t.Errorf("os-release: %q", osRelease)
	}
	for name, want := range lists {
		if got := files["etc/apt/sources.list.d/"+name+".list"]; got != want {
			t.Errorf("apt sources %s.list: %q, want %q", name, got, want)
		}
	}
	t.Logf("debian-minimal tree built in %s", r.took)
}

const devPassword = "dibvm-e2e-Secret"

// TestE2EBootableBIOS is the product's main job: an ordinary user builds
// `vm debian devuser`, the Debian cloud image, and it boots under SeaBIOS
// to a login on the serial console and, with no cloud datasource, brings
// its network interface up so that OpenSSH logs in with the key given in
// DIB_DEV_USER_AUTHORIZED_KEYS, to a host key made at first boot.
//
// The build also has debian-user-element, written as DIB users write
// theirs; its effects are checked in the image from the host.
//
// growroot is in both bootable builds, as in most cloud images: the image
// boots on a disk a GiB larger than it was built, and the root partition
// and filesystem must have grown into it.
func TestE2EBootableBIOS(t *testing.T) {
	key := newSSHKey(t)
	sourcesEnv, lists := debianSources(t)
	img := buildAsUser(t, "deb", append(sourcesEnv, "DIB_DEV_USER_AUTHORIZED_KEYS="+key.pub),
		"vm", "debian", "growroot", "devuser", "debian-user-element")
	root := checkImage(t, img, "dos")
	checkUserElement(t, root)
	checkCloudImage(t, root, lists)
	checkLockFile(t, img)
	bootAndCheck(t, img, fileSize(t, root), nil, key)
	checkBootCommand(t, img, key, "bios")
	checkBootNetwork(t, img, key)
	checkBootThroughLibvirt(t, img, key, "bios")
}

// checkBootNetwork boots img on the default network and tries, from the
// image, two servers on the host's loopback: one --allow-net opens, one
// it does not. Direct connections to the host (10.0.2.2) reach neither;
// through the egress proxy at 10.0.2.100:3128 the opened one answers
// and the other is refused, as in a build.
func checkBootNetwork(t *testing.T, img string, key *sshKey) {
	t.Helper()
	var hitsRefused, hitsOpened atomic.Int32
	refused := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hitsRefused.Add(1) }))
	defer refused.Close()
	opened := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hitsOpened.Add(1) }))
	defer opened.Close()
	port := func(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }
	script := fmt.Sprintf(`direct() { if timeout 20 bash -c "exec 3<>/dev/tcp/10.0.2.2/$1" 2>/dev/null; then echo open; else echo closed; fi; }
proxied() { timeout 60 bash -c 'exec 3<>/dev/tcp/10.0.2.100/3128 || exit 1; printf "GET http://127.0.0.1:%%s/ HTTP/1.0\r\nHost: 127.0.0.1:%%s\r\n\r\n" "$1" "$1" >&3; head -n 1 <&3 | tr -d "\r"' _ "$1"; }
echo "direct-refused=$(direct %[1]d)"
echo "direct-opened=$(direct %[2]d)"
echo "proxy-refused=$(proxied %[1]d)"
echo "proxy-opened=$(proxied %[2]d)"
`, port(refused), port(opened))
	r := dibvm(t, nil, 20*time.Minute, "boot", "--accel", "tcg", "--allow-net", fmt.Sprintf("127.0.0.1:%d", port(opened)),
		"-i", key.priv, img, "--", "bash", "-c", script)
	for _, want := range []string{"direct-refused=closed\n", "direct-opened=closed\n", `proxy-refused=HTTP/1\.[01] 403 `, `proxy-opened=HTTP/1\.[01] 200 `} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("dibvm boot on the default network: no %q\nexit %d\nstdout:\n%s\nstderr:\n%s", want, r.code, r.stdout, tail(r.stderr, 30))
		}
	}
	if n := hitsRefused.Load(); n != 0 {
		t.Errorf("the loopback server --allow-net did not open had %d requests from the image", n)
	}
	if n := hitsOpened.Load(); n != 1 {
		t.Errorf("the loopback server --allow-net opened had %d requests from the image, want the proxy's one", n)
	}
}

// checkBootCommand runs a command in img with dibvm boot, as a CI smoke
// test would: it boots with the firmware the image needs (want), logs in
// over SSH as the dev user with key, ends with the command's exit
// status, powers the VM off, and leaves the image as it was.
func checkBootCommand(t *testing.T, img string, key *sshKey, want string) {
	t.Helper()
	before := fileDigest(t, img)
	start := time.Now()
	r := dibvm(t, nil, 20*time.Minute, append([]string{"boot", "--accel", "tcg", "--network", "restricted", "-i", key.priv, img, "--"}, bootCheck...)...)
	t.Logf("dibvm boot -- COMMAND took %s", time.Since(start).Round(time.Second))
	checkBootResult(t, r, want)
	if pids := qemuPids(img); len(pids) > 0 {
		t.Errorf("QEMU still runs after dibvm boot: %v", pids)
	}
	if fileDigest(t, img) != before {
		t.Error("dibvm boot without --persist changed the image")
	}
}

// bootCheck is the command checkBootCommand runs in the image.
var bootCheck = []string{"sh", "-c", `if test -d /sys/firmware/efi; then echo "firmware=uefi"; else echo "firmware=bios"; fi; echo "user=$(id -un)"; touch /tmp/written; exit 7`}

func checkBootResult(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 7 || !strings.Contains(r.stdout, "firmware="+want+"\n") || !strings.Contains(r.stdout, "user=devuser\n") {
		t.Errorf("dibvm boot -- COMMAND: exit %d, want the command's 7 and firmware=%s as devuser\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, tail(r.stderr, 30))
	}
}

// checkBootThroughLibvirt boots img as a domain of an ordinary user's
// libvirt session daemon, twice: its console, on a pipe, until it offers
// a login and Ctrl-] ends it; then -- COMMAND, as checkBootCommand. The
// domain is listed while it runs, none is left after, and the image is
// as it was.
func checkBootThroughLibvirt(t *testing.T, img string, key *sshKey, want string) {
	t.Helper()
	lu := newLibvirtUser(t)
	priv := filepath.Join(lu.tmp, "id")
	copyFile(t, key.priv, priv)
	os.Chmod(priv, 0o600)
	os.Chown(priv, lu.uid, lu.gid)
	before := fileDigest(t, img)
	// One CPU: libvirt runs TCG multi-threaded, which now and then
	// panics a guest that patches its own code.
	vm := []string{"boot", "--backend", "libvirt", "--accel", "tcg", "--cpus", "1"}

	start := time.Now()
	cmd := lu.command(lu.bin, append(vm, img)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	login := make(chan string, 1)
	go func() {
		var console []byte
		b := make([]byte, 4096)
		for {
			n, err := stdout.Read(b)
			console = append(console, b[:n]...)
			if bytes.Contains(console, []byte("login: ")) {
				login <- string(console)
				io.Copy(io.Discard, stdout)
				break
			}
			if err != nil {
				login <- ""
				break
			}
		}
		exited <- cmd.Wait()
	}()
	defer cmd.Process.Kill()
	select {
	case c := <-login:
		if c == "" {
			t.Fatalf("dibvm boot --backend libvirt ended before the console offered a login\nstderr:\n%s", stderr.String())
		}
	case <-time.After(15 * time.Minute):
		t.Fatalf("no login prompt on the console through libvirt within 15 minutes\nstderr:\n%s", stderr.String())
	}
	t.Logf("dibvm boot --backend libvirt: a login prompt after %s", time.Since(start).Round(time.Second))
	if doms := lu.domains(t); len(doms) != 1 {
		t.Errorf("while the image boots, the session daemon lists dibvm domains %v, want one", doms)
	}
	stdin.Write([]byte{0x1d})
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("dibvm boot --backend libvirt, left with Ctrl-]: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("dibvm boot --backend libvirt did not end a minute after Ctrl-]\nstderr:\n%s", stderr.String())
	}
	if doms := lu.domains(t); len(doms) > 0 {
		t.Errorf("the console ended and left domains %v", doms)
	}

	start = time.Now()
	r := lu.dibvm(t, nil, 20*time.Minute, append(append(vm, "--network", "restricted", "-i", priv, img, "--"), bootCheck...)...)
	t.Logf("dibvm boot --backend libvirt -- COMMAND took %s", time.Since(start).Round(time.Second))
	checkBootResult(t, r, want)
	if doms := lu.domains(t); len(doms) > 0 {
		t.Errorf("dibvm boot --backend libvirt -- COMMAND left domains %v", doms)
	}
	if fileDigest(t, img) != before {
		t.Error("dibvm boot --backend libvirt without --persist changed the image")
	}
}

// fileDigest is the SHA-256 of a file.
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	sum, _, err := sha256sum.File(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// checkCloudImage checks, in the root filesystem, what makes the image
// fit to boot on many machines and to stay patched: no SSH host key made
// during the build, and apt sources with the release's updates and its
// security archive.
func checkCloudImage(t *testing.T, root string, lists map[string]string) {
	t.Helper()
	if ls := debugfsCat(t, root, "/etc/ssh/sshd_config"); !regexp.MustCompile(`(?m)^KexAlgorithms mlkem768x25519-sha256,.*curve25519-sha256@libssh.org`).MatchString(ls) {
		t.Errorf("sshd_config is not hardened:\n%s", tail(ls, 20))
	}
	for _, k := range []string{"ed25519", "ecdsa", "rsa"} {
		if debugfsExists(t, root, "/etc/ssh/ssh_host_"+k+"_key") {
			t.Errorf("the image carries the build's %s host key", k)
		}
	}
	for name, want := range lists {
		if got := debugfsCat(t, root, "/etc/apt/sources.list.d/"+name+".list"); got != want {
			t.Errorf("apt sources %s.list: %q, want %q", name, got, want)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// checkUserElement checks debian-user-element's effects in the root
// filesystem: environment.d reached root.d and install.d, install.d read
// its data in /tmp/in_target.d, and package-installs honoured the phase,
// the arch conditions and the pkg-map.
func checkUserElement(t *testing.T, root string) {
	t.Helper()
	if got := debugfsCat(t, root, "/etc/debian-user-root-d"); got != "root.d: hello from environment.d\n" {
		t.Errorf("root.d effect %q", got)
	}
	if got := debugfsCat(t, root, "/etc/debian-user-install-d"); got != "install.d: hello from environment.d\ndata from the element, read in the chroot\n" {
		t.Errorf("install.d effect %q", got)
	}
	for path, want := range map[string]bool{
		"/usr/bin/hello":    true,  // greeter, post-install.d, mapped to hello
		"/usr/bin/tree":     true,  // lister, arch: amd64
		"/usr/games/cowsay": false, // moo, not-arch: amd64
	} {
		if got := debugfsExists(t, root, path); got != want {
			t.Errorf("%s present = %v, want %v", path, got, want)
		}
	}
}

// debugfsExists reports whether path exists in the ext filesystem image.
func debugfsExists(t *testing.T, fsImage, path string) bool {
	t.Helper()
	out, err := exec.Command(tool(t, "debugfs", "e2fsprogs"), "-R", "stat "+path, fsImage).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs stat %s: %v\n%s", path, err, out)
	}
	return !strings.Contains(string(out), "not found")
}

// TestE2EBootableEFI builds the same image with block-device-efi and
// boots it under OVMF.
func TestE2EBootableEFI(t *testing.T) {
	// openssh-server: a debian-minimal image brings its network up too.
	key := newSSHKey(t)
	sourcesEnv, _ := debianSources(t)
	img := buildAsUser(t, "deb-efi", append(sourcesEnv, "DIB_DEV_USER_AUTHORIZED_KEYS="+key.pub),
		"vm", "block-device-efi", "debian-minimal", "growroot", "devuser", "openssh-server")
	root := checkImage(t, img, "gpt")
	fw, err := qemu.Host{}.FindUEFI("amd64")
	if err != nil {
		t.Fatalf("booting under UEFI: %v (scripts/install-deps.sh installs it)", err)
	}
	myVars := filepath.Join(t.TempDir(), "vars.fd")
	copyFile(t, fw.Vars, myVars)
	bootAndCheck(t, img, fileSize(t, root), []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + fw.Code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + myVars,
	}, key)
	checkBootCommand(t, img, key, "uefi")
	checkBootThroughLibvirt(t, img, key, "uefi")
}

// buildAsUser runs dibvm create as an ordinary user (made when the test
// runs as root) and returns the qcow2 it built.
func buildAsUser(t *testing.T, name string, extraEnv []string, elems ...string) string {
	t.Helper()
	return buildOutputAsUser(t, name, "qcow2", extraEnv, elems...)
}

// buildOutputAsUser is buildAsUser for an output type and its file's
// extension: qcow2, or squashfs (.squash), or tar.
func buildOutputAsUser(t *testing.T, name, outType string, extraEnv []string, elems ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dibvm-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "out", name)
	args := append([]string{"create", "-t", outType, "-o", out}, elems...)
	ext := map[string]string{"squashfs": ".squash"}[outType]
	if ext == "" {
		ext = "." + outType
	}
	elementsDir := readableElements(t, dir)
	env := append([]string{"DIB_DEV_USER_PASSWORD=" + devPassword, "DIB_DEV_USER_PWDLESS_SUDO=yes", "ELEMENTS_PATH=" + elementsDir,
		// Real builds keep checkpoints too, in the test's own store.
		"DIBVM_CHECKPOINTS_DIR=" + filepath.Join(dir, "checkpoints")}, extraEnv...)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		u := ensureUser(t, "dibvmtest")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		bin := filepath.Join(dir, "dibvm")
		copyFile(t, dibvmBin, bin)
		cmd = exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append([]string{"HOME=" + u.HomeDir, "USER=" + u.Username, "PATH=" + os.Getenv("PATH")}, env...)
	} else {
		cmd = exec.Command(dibvmBin, args...)
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Dir = dir
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	// A helper of another architecture than the host's runs under TCG
	// even where the host's own would have a hypervisor, and emulating
	// arm64 on x86 costs more than x86 on x86.
	limit := 75 * time.Minute
	if slices.ContainsFunc(extraEnv, func(kv string) bool { return strings.HasPrefix(kv, "ARCH=") }) {
		limit = 3 * time.Hour
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Signal(syscall.SIGTERM) })
	err = cmd.Run()
	timer.Stop()
	if err != nil {
		t.Fatalf("dibvm %s as an ordinary user: %v\n%s", strings.Join(args, " "), err, tail(log.String(), 60))
	}
	t.Logf("built %s in %s; per phase:\n%s", strings.Join(elems, " "), time.Since(start).Round(time.Second), phaseTimes(unstamp(log.String())))
	if !fileExists(out + ext) {
		t.Fatalf("no %s%s after a successful build", out, ext)
	}
	// Both builds install one kernel; its initramfs, minutes of work
	// under emulation, must be made once, not again by the trigger.
	// dracut-ramdisk's own install.d installs dracut in place of
	// initramfs-tools later, and that apt run makes it once more.
	want := 1
	if slices.Contains(elems, "dracut-ramdisk") {
		want = 2
	}
	if n := strings.Count(log.String(), "update-initramfs: Generating "); n != want {
		t.Errorf("the initramfs was generated %d times, want %d", n, want)
	}
	return out + ext
}

// checkImage checks an x86 image from the host, without root and without
// mounting: as checkDiskImage, and GRUB's BIOS boot code in the boot
// sector. It returns the root filesystem, extracted.
func checkImage(t *testing.T, img, label string) string {
	t.Helper()
	root, raw := checkDiskImage(t, img, label)
	mbr := make([]byte, 512)
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.ReadAt(mbr, 0)
	f.Close()
	if !bytes.Contains(mbr, []byte("GRUB")) {
		t.Error("the boot sector holds no GRUB boot code")
	}
	return root
}

// checkDiskImage checks the image from the host: qemu-img check, the
// partition table, the root filesystem's label, UUID and fstab, and
// GRUB's configuration. It returns the root filesystem, extracted, and
// the whole image as raw.
func checkDiskImage(t *testing.T, img, label string) (root, raw string) {
	t.Helper()
	qemuImg := tool(t, "qemu-img", "qemu-utils")
	if out, err := exec.Command(qemuImg, "check", img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check %s: %v\n%s", img, err, out)
	}
	raw = filepath.Join(t.TempDir(), "image.raw")
	if out, err := exec.Command(qemuImg, "convert", "-f", "qcow2", "-O", "raw", img, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	pt := readPartitions(t, raw)
	if pt.PartitionTable.Label != label {
		t.Errorf("partition table %q, want %q", pt.PartitionTable.Label, label)
	}
	rootPart := pt.PartitionTable.Partitions[len(pt.PartitionTable.Partitions)-1]
	root = extract(t, raw, rootPart.Start, rootPart.Size)
	if got := blkid(t, root, "LABEL"); got != "cloudimg-rootfs" {
		t.Errorf("root filesystem label %q, want cloudimg-rootfs", got)
	}
	if uuid := blkid(t, root, "UUID"); len(uuid) != 36 {
		t.Errorf("root filesystem UUID %q", uuid)
	}
	if fstab := debugfsCat(t, root, "/etc/fstab"); !regexp.MustCompile(`(?m)^LABEL=cloudimg-rootfs\s+/\s+ext4\s`).MatchString(fstab) {
		t.Errorf("fstab does not mount the root by label:\n%s", fstab)
	}
	if cfg := debugfsCat(t, root, "/boot/grub/grub.cfg"); !strings.Contains(cfg, "root=LABEL=cloudimg-rootfs") {
		t.Errorf("grub.cfg does not boot the root by label:\n%s", tail(cfg, 20))
	}
	return root, raw
}

// bootAndCheck boots img, on an overlay a GiB larger than the image, with
// the extra QEMU arguments; logs in on the serial console as the dev
// user; and checks the system, including that growroot grew the root
// filesystem (rootBytes when built) into the larger disk. Then it logs in
// over SSH with key (see checkSSH).
func bootAndCheck(t *testing.T, img string, rootBytes int64, extra []string, key *sshKey) {
	t.Helper()
	emulator := tool(t, "qemu-system-x86_64", "qemu-system-x86")
	disk := biggerOverlay(t, img, 1<<30)
	// One virtio NIC, named by the guest's kernel (ens3 here), on a
	// network that reaches nothing: QEMU forwards the host's loopback
	// port to the guest's sshd, and the guest's 10.0.2.100:3128 to the
	// test's own proxy for the Debian archives.
	sshPort := freePort(t)
	extra = append(extra, "-netdev", fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22,guestfwd=tcp:10.0.2.100:3128-tcp:%s", sshPort, debianProxy(t)),
		"-device", "virtio-net-pci,netdev=n0")
	// Single-threaded TCG: multi-threaded TCG now and then lets a vCPU
	// trap on the int3 the guest kernel plants while it live-patches its
	// code (jump labels, sched_clock), after the patch is done, which
	// panics the guest ("Fatal exception in interrupt"). The helper VM
	// avoids the sched_clock patch with tsc=unstable; the image's kernel
	// command line is not ours to change.
	args := append([]string{"-accel", "tcg,thread=single", "-m", "1024", "-smp", "2", "-nodefaults", "-display", "none",
		"-chardev", "stdio,id=s0,signal=off", "-serial", "chardev:s0",
		"-drive", "file=" + disk + ",if=virtio,format=qcow2"}, extra...)
	vm := loginOnConsole(t, emulator, args, 10*time.Minute)
	// growroot.service may still be queued at login.
	out := vm.run(t, ". /etc/os-release; echo \"os=$ID\"; "+
		"echo \"cmdline=$(cat /proc/cmdline)\"; echo \"rootsrc=$(findmnt -n -o SOURCE /)\"; "+
		"ls -1 /dev/disk/by-label; sed 's/^/fstab: /' /etc/fstab; sudo -n id -u; "+
		"timeout 300 sh -c 'until systemctl is-active -q growroot || systemctl is-failed -q growroot; do sleep 1; done'; "+
		"echo \"growroot=$(systemctl is-active growroot)\"; r=$(readlink -f /sys/dev/block/$(mountpoint -d /)); "+
		"echo \"rootstart=$(cat $r/start) rootsectors=$(cat $r/size) disksectors=$(cat $r/../size) rootfsbytes=$(df -B1 --output=size / | tail -n 1)\"", 7*time.Minute)
	for _, want := range []string{"os=debian", "root=LABEL=cloudimg-rootfs", "cloudimg-rootfs\r\n",
		"fstab: LABEL=cloudimg-rootfs / ext4", "\r\n0\r\n", "growroot=active\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the booted system does not show %q:\n%s", want, out)
		}
	}
	checkGrown(t, out, rootBytes)
	checkSSH(t, key, sshPort)
	io.WriteString(vm.stdin, "sudo -n poweroff\n")
}

// consoleSession is a booted image's serial console, the dev user logged
// in on it.
type consoleSession struct {
	stdin   io.Writer
	console *consoleLog
}

// loginOnConsole starts emulator with args (which put its serial console
// on stdio), waits at most bootLimit for the login prompt, and logs in as
// the dev user. The VM is killed when the test ends.
func loginOnConsole(t *testing.T, emulator string, args []string, bootLimit time.Duration) *consoleSession {
	t.Helper()
	cmd := exec.Command(emulator, args...)
	stdin, _ := cmd.StdinPipe()
	console := &consoleLog{}
	cmd.Stdout, cmd.Stderr = console, console
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	console.expect(t, "login: ", bootLimit)
	t.Logf("login prompt after %s", time.Since(start).Round(time.Second))
	io.WriteString(stdin, "devuser\n")
	console.expect(t, "Password: ", 2*time.Minute)
	io.WriteString(stdin, devPassword+"\n")
	console.expect(t, "$ ", 3*time.Minute)
	return &consoleSession{stdin: stdin, console: console}
}

// run types line into the shell and returns what it printed, found
// between two markers. The markers are computed, so that the echo of the
// typed line does not match them.
func (s *consoleSession) run(t *testing.T, line string, limit time.Duration) string {
	t.Helper()
	io.WriteString(s.stdin, "echo CHECKS-$((1+1)); "+line+"; echo CHECKS-$((2+2))\n")
	out := s.console.expect(t, "CHECKS-4\r\n", limit)
	i := strings.LastIndex(out, "CHECKS-2\r\n")
	if i < 0 {
		t.Fatalf("the output of %q did not start:\n%s", line, tail(out, 40))
	}
	return out[i:]
}

// biggerOverlay is a qcow2 overlay on img, grow bytes larger than it.
func biggerOverlay(t *testing.T, img string, grow int64) string {
	t.Helper()
	qemuImg := tool(t, "qemu-img", "qemu-utils")
	info, err := exec.Command(qemuImg, "info", "--output=json", img).Output()
	var v struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err != nil || json.Unmarshal(info, &v) != nil || v.VirtualSize == 0 {
		t.Fatalf("qemu-img info %s: %v", img, err)
	}
	overlay := filepath.Join(t.TempDir(), "boot.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", "-b", img, "-F", "qcow2",
		overlay, strconv.FormatInt(v.VirtualSize+grow, 10)).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create overlay: %v\n%s", err, out)
	}
	return overlay
}

// checkGrown checks growroot's work as the booted system reported it:
// the root partition reaches to within 1 MiB of the disk's end, and the
// filesystem on it is larger than the whole partition was when built.
func checkGrown(t *testing.T, out string, rootBytes int64) {
	t.Helper()
	m := regexp.MustCompile(`rootstart=(\d+) rootsectors=(\d+) disksectors=(\d+) rootfsbytes=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("the booted system did not report its sizes:\n%s", out)
		return
	}
	var n [4]int64
	for i := range n {
		n[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	start, part, disk, fsBytes := n[0], n[1], n[2], n[3]
	if part*512 <= rootBytes || disk-(start+part) > 2048+34 {
		t.Errorf("root partition of %d sectors at %d on a %d-sector disk (built %d sectors): growroot did not grow it to the end",
			part, start, disk, rootBytes/512)
	}
	if fsBytes <= rootBytes {
		t.Errorf("root filesystem %d bytes, not larger than the %d-byte partition it was built on: growroot did not resize it", fsBytes, rootBytes)
	}
}

// consoleLog collects a serial console and waits for text on it.
type consoleLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
	pos int // where the next expect starts looking
}

func (c *consoleLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// expect waits for s after what earlier expects matched, and returns the
// console text up to and including it.
func (c *consoleLog) expect(t *testing.T, s string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		text := c.buf.String()
		c.mu.Unlock()
		if i := strings.Index(text[c.pos:], s); i >= 0 {
			end := c.pos + i + len(s)
			c.pos = end
			return text[:end]
		}
		if oops, ok := kernelPanic(text); ok {
			// The gist comes last too, where a truncated log still shows it.
			t.Fatalf("the guest kernel panicked; its report:\n%s\nthe panic in short: %s", oops, oopsGist(oops))
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("the console did not show %q within %s; its last lines:\n%s", s, limit, tail(c.buf.String(), 40))
	return ""
}

// oopsStart is how the first line of a kernel's oops report begins.
var oopsStart = regexp.MustCompile(`BUG:|Oops|general protection|cut here|invalid opcode|Unable to handle`)

// kernelPanic finds a kernel panic on the console and returns the report
// that led to it, from the oops's first line (in the 150 lines before the
// panic) on: that is what tells one cause from another.
func kernelPanic(console string) (string, bool) {
	end := strings.Index(console, "Kernel panic - not syncing")
	if end < 0 {
		return "", false
	}
	if nl := strings.IndexByte(console[end:], '\n'); nl >= 0 {
		end += nl
	}
	lines := strings.Split(console[:end], "\n")
	from := max(len(lines)-150, 0)
	for i := from; i < len(lines); i++ {
		if oopsStart.MatchString(lines[i]) {
			from = i
			break
		}
	}
	return strings.Join(lines[from:], "\n"), true
}

// oopsGist is an oops report's first line, the faulting function and the
// process, on one line.
func oopsGist(oops string) string {
	var gist []string
	for i, l := range strings.Split(oops, "\n") {
		if i == 0 || strings.Contains(l, "RIP: 0010:") || strings.Contains(l, " Comm: ") {
			gist = append(gist, strings.TrimSpace(l))
		}
	}
	return strings.Join(gist, " | ")
}

// phaseTimes picks dib-run-parts' timing tables out of a build log.
func phaseTimes(log string) string {
	row := regexp.MustCompile(`^dib-run-parts (Target: .*|\S+\s+\d+\.\d{3})$`)
	var b strings.Builder
	for _, l := range strings.Split(log, "\n") {
		if m := row.FindStringSubmatch(strings.TrimRight(l, "\r")); m != nil {
			fmt.Fprintln(&b, m[1])
		}
	}
	return b.String()
}
