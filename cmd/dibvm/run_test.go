package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunPrintsApplianceKernel(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 10*time.Minute, "run", "--", "uname", "-r")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	info := dibvm(t, nil, time.Minute, "appliance", "info")
	var kernel string
	for _, l := range strings.Split(info.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "kernel:"); ok {
			kernel = strings.Fields(v)[0]
		}
	}
	if kernel == "" {
		t.Fatalf("appliance info names no kernel:\n%s", info.stdout)
	}
	if got := strings.TrimSpace(r.stdout); got != kernel {
		t.Errorf("guest uname -r = %q, appliance kernel = %q", got, kernel)
	}
	t.Logf("dibvm run -- uname -r took %s", r.took)
}

// The helper VM can be of another architecture than the host's: its own
// appliance, built from that architecture's Debian packages, with its own
// agent, under TCG.
func TestRunOtherArchitecture(t *testing.T) {
	needVM(t)
	arch, machine := "arm64", "aarch64"
	if runtime.GOARCH == "arm64" {
		arch, machine = "amd64", "x86_64"
	}
	r := dibvm(t, nil, 10*time.Minute, "run", "--arch", arch, "--stats", "--", "sh", "-c", "uname -m; cat /proc/cpuinfo | grep -c ^processor")
	if r.code != 0 {
		t.Fatalf("dibvm run --arch %s: exit %d\n%s", arch, r.code, r.stderr)
	}
	if lines := strings.Fields(r.stdout); len(lines) < 1 || lines[0] != machine {
		t.Errorf("dibvm run --arch %s -- uname -m printed %q, want %s", arch, r.stdout, machine)
	}
	if !strings.Contains(r.stderr, "arch="+arch+" accel=tcg ") {
		t.Errorf("a helper of another architecture ran other than under TCG:\n%s", r.stderr)
	}
	info := dibvm(t, nil, time.Minute, "appliance", "info", "--arch", machine)
	if !strings.Contains(info.stdout, "arch:     "+arch+"\n") || !strings.Contains(info.stdout, "-"+arch) {
		t.Errorf("appliance info --arch %s does not describe a %s appliance:\n%s", machine, arch, info.stdout)
	}
	t.Logf("dibvm run --arch %s took %s", arch, r.took)
}

func TestRunKeepsStreamsApartAndExitStatus(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
	if r.code != 7 {
		t.Errorf("exit code %d, want 7", r.code)
	}
	if r.stdout != "out\n" {
		t.Errorf("stdout %q, want %q", r.stdout, "out\n")
	}
	// dibvm's own notices (a KVM that failed earlier on this host is
	// skipped, and says so) come first; the rest is the command's.
	if got := withoutNotices(r.stderr); got != "err\n" {
		t.Errorf("stderr %q, want %q after dibvm's notices", r.stderr, "err\n")
	}
}

// withoutNotices is stderr without dibvm's own one-line notices.
func withoutNotices(stderr string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if !strings.HasPrefix(l, "dibvm: ") {
			b.WriteString(l)
		}
	}
	return b.String()
}

func TestRunPassesArgumentsIntact(t *testing.T) {
	needVM(t)
	args := []string{"it's", "two words", "$HOME", "*", ""}
	r := dibvm(t, nil, 5*time.Minute, append([]string{"run", "--", "printf", "[%s]"}, args...)...)
	want := "[it's][two words][$HOME][*][]"
	if r.code != 0 || r.stdout != want {
		t.Errorf("got %q (exit %d), want %q\n%s", r.stdout, r.code, want, r.stderr)
	}
}

func TestRunEnvironment(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 5*time.Minute, "run", "-e", "GREETING=hello world", "--", "sh", "-c", `echo "$GREETING from $(id -un) in $PWD"`)
	if want := "hello world from root in /root\n"; r.stdout != want || r.code != 0 {
		t.Errorf("got %q (exit %d), want %q\n%s", r.stdout, r.code, want, r.stderr)
	}
}

// PID 1 must reap orphans, or the guest fills with zombies.
func TestGuestReapsOrphans(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c",
		`for i in 1 2 3 4 5; do (sleep 0.2 &) ; done; sleep 2; ps -eo stat= | grep -c '^Z' || true`)
	if got := strings.TrimSpace(r.stdout); got != "0" || r.code != 0 {
		t.Errorf("zombies left in the guest: %q (exit %d)\n%s", got, r.code, r.stderr)
	}
}

func TestRunStdin(t *testing.T) {
	needVM(t)
	cmd := exec.Command(dibvmBin, "run", "--", "tr", "a-z", "A-Z")
	cmd.Stdin = strings.NewReader("hello guest\n")
	out, err := cmd.Output()
	if err != nil || string(out) != "HELLO GUEST\n" {
		t.Errorf("got %q, %v", out, err)
	}
}

func TestGuestKernelPanicIsAnError(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c", "echo c > /proc/sysrq-trigger")
	if r.code == 0 {
		t.Fatal("a guest kernel panic reported success")
	}
	if !strings.Contains(r.stderr, "Kernel panic") {
		t.Errorf("error does not show the panic:\n%s", r.stderr)
	}
}

func TestAgentCrashIsAnError(t *testing.T) {
	needVM(t)
	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c", "kill -ABRT 1; sleep 60")
	if r.code == 0 {
		t.Fatal("an agent crash reported success")
	}
	if !strings.Contains(r.stderr, "the helper VM stopped") || !strings.Contains(r.stderr, "Attempted to kill init") {
		t.Errorf("error does not say the VM stopped because init died:\n%s", r.stderr)
	}
}

// As an ordinary user, dibvm runs the guest command as root while nothing
// on the host runs as root. Run as root, the test makes such a user.
func TestRunAsOrdinaryUser(t *testing.T) {
	needVM(t)
	if os.Geteuid() != 0 {
		checkUnprivileged(t, exec.Command(dibvmBin, "run", "--", "sh", "-c", "id -u; sleep 5"), os.Getuid())
		return
	}
	u := ensureUser(t, "dibvmtest")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The binary must be somewhere the user can read.
	dir, err := os.MkdirTemp("", "dibvm-user-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "dibvm")
	copyFile(t, dibvmBin, bin)
	cmd := exec.Command(bin, "run", "--", "sh", "-c", "id -u; sleep 5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = u.HomeDir
	checkUnprivileged(t, cmd, uid)
}

func checkUnprivileged(t *testing.T, cmd *exec.Cmd, uid int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// While it runs, every QEMU it started must belong to the user.
	seen := 0
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timeout := time.After(10 * time.Minute)
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("dibvm as uid %d: %v\n%s", uid, err, errb.String())
			}
			waiting = false
		case <-timeout:
			cmd.Process.Kill()
			t.Fatal("dibvm as an ordinary user did not finish")
		case <-time.After(200 * time.Millisecond):
			for _, pid := range childQEMU(cmd.Process.Pid) {
				owner := procUID(pid)
				if owner < 0 {
					continue // exited between listing and reading
				}
				seen++
				if owner != uid {
					t.Errorf("QEMU pid %d runs as uid %d, want %d", pid, owner, uid)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("never saw dibvm's QEMU process to check its owner")
	}
	if got := strings.TrimSpace(out.String()); got != "0" {
		t.Errorf("id -u in the guest = %q, want 0", got)
	}
}

// The helper loads at boot only the drivers it needs to reach the host;
// the kernel asks the agent, as modprobe, for the rest: filesystems when
// they are mounted, loop and device-mapper when their control nodes are
// opened. Every filesystem DIB makes must still mount.
func TestRunLoadsModulesOnDemand(t *testing.T) {
	needVM(t)
	script := `set -e
loaded() { awk '{print $1}' /proc/modules | sort | tr '\n' ' '; echo; }
echo "boot: $(loaded)"
cd /tmp
truncate -s 10M d.img
l=$(losetup -f --show d.img)
dmsetup create dibvm-test --table "0 100 linear $l 0"
dmsetup remove dibvm-test
losetup -d "$l"
for fs in ext4 xfs vfat; do
  truncate -s 320M $fs.img
  mkfs.$fs $fs.img >/dev/null 2>&1
  mkdir -p /mnt/$fs
  mount -o loop $fs.img /mnt/$fs
  umount /mnt/$fs
done
mkdir -p l u w o sq
mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w o
mksquashfs /etc/dibvm s.sq -quiet >/dev/null
mount -t squashfs -o loop s.sq sq
modprobe nls_utf8
echo "after: $(loaded)"
if modprobe -q fs-nosuch; then echo "fs-nosuch loaded"; fi
modprobe nosuch 2>&1 || true
`
	r := dibvm(t, nil, 5*time.Minute, "run", "--", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var boot, after []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "boot: "); ok {
			boot = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(l, "after: "); ok {
			after = strings.Fields(v)
		}
	}
	for _, m := range []string{"xfs", "ext4", "loop", "dm_mod", "overlay", "squashfs", "vfat"} {
		if slices.Contains(boot, m) {
			t.Errorf("%s loaded at boot, before anything asked for it: %v", m, boot)
		}
	}
	for _, m := range []string{"virtio_blk", "virtio_net", "isofs", "xfs", "ext4", "loop", "dm_mod", "overlay", "squashfs", "vfat", "nls_utf8"} {
		if !slices.Contains(after, m) {
			t.Errorf("%s not loaded at the end: %v", m, after)
		}
	}
	if strings.Contains(r.stdout, "fs-nosuch loaded") {
		t.Errorf("modprobe -q fs-nosuch succeeded")
	}
	if !strings.Contains(r.stdout, "modprobe: FATAL: module nosuch not found") {
		t.Errorf("modprobe nosuch did not say it has no such module:\n%s", r.stdout)
	}
}

// Under TCG an x86 helper gets an x86-64-v2 CPU, which boots faster than
// max; --cpu-model max gives AVX2 to images that need x86-64-v3.
func TestRunCPUModel(t *testing.T) {
	needVM(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the x86 CPU models are for an amd64 helper; TestRunOtherArchitecture boots an arm64 one")
	}
	flags := func(env []string, args ...string) string {
		r := dibvm(t, env, 5*time.Minute, append(append([]string{"run", "--accel", "tcg"}, args...), "--", "sh", "-c", "grep -m1 '^flags' /proc/cpuinfo; echo randomize_va_space=$(cat /proc/sys/kernel/randomize_va_space); dmesg")...)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		return r.stdout
	}
	f := flags(nil)
	if !strings.Contains(f, " sse4_2") || !strings.Contains(f, " popcnt") || strings.Contains(f, " avx") || !strings.Contains(f, " rdrand") {
		t.Errorf("the default CPU is not x86-64-v2 with RDRAND and without AVX:\n%s", f)
	}
	// Linux's random number generator must be ready before the second CPU
	// starts: flipping its static branch later rewrites code that CPU may
	// be running, which multi-threaded TCG now and then gets wrong.
	crng, smp := strings.Index(f, "random: crng init done"), strings.Index(f, "smp: Brought up")
	if crng < 0 || smp < 0 || crng > smp {
		t.Errorf("the kernel's crng was not ready before SMP bring-up (crng at %d, smp at %d):\n%s", crng, smp, f)
	}
	// Under TCG every process is mapped at the same addresses, so that
	// QEMU's translations of shared libraries serve every process.
	if !strings.Contains(f, "randomize_va_space=0\n") {
		t.Errorf("address space randomization is on in the helper under TCG:\n%s", f)
	}
	if f := flags([]string{"DIBVM_CPU_MODEL=max"}); !strings.Contains(f, " avx2") {
		t.Errorf("DIBVM_CPU_MODEL=max gave no AVX2:\n%s", f)
	}
	if r := dibvm(t, nil, time.Minute, "run", "--cpu-model", "nosuch", "--", "true"); r.code != 2 || !strings.Contains(r.stderr, "does not know this CPU model") {
		t.Errorf("--cpu-model nosuch: exit %d\n%s", r.code, r.stderr)
	}
}
