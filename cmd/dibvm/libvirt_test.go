package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// libvirtUser is a user with a libvirt session daemon of its own, as a
// workstation user of virt-manager has: the tests start the daemon
// (libvirtd, from scripts/install-deps.sh) and stop it again.
type libvirtUser struct {
	u        *user.User
	uid, gid int
	bin      string // dibvm, where the user can run it
	tmp      string // a directory of the user's own
}

func newLibvirtUser(t *testing.T) *libvirtUser {
	t.Helper()
	needVM(t)
	daemon, err := exec.LookPath("libvirtd")
	if err != nil {
		if daemon, err = exec.LookPath("/usr/sbin/libvirtd"); err != nil {
			t.Fatal("the libvirt tests need libvirtd and its QEMU driver (scripts/install-deps.sh installs them)")
		}
	}
	var lu libvirtUser
	if os.Geteuid() == 0 {
		lu.u = ensureUser(t, "dibvmtest")
	} else if lu.u, err = user.Current(); err != nil {
		t.Fatal(err)
	}
	lu.uid, _ = strconv.Atoi(lu.u.Uid)
	lu.gid, _ = strconv.Atoi(lu.u.Gid)
	lu.tmp, err = os.MkdirTemp("", "dibvm-libvirt-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(lu.tmp) })
	os.Chown(lu.tmp, lu.uid, lu.gid)
	lu.bin = filepath.Join(lu.tmp, "dibvm")
	copyFile(t, dibvmBin, lu.bin)

	// One daemon per user: stop one left running by someone else, so
	// that this one owns the socket.
	exec.Command("pkill", "-u", lu.u.Uid, "-x", "libvirtd").Run()
	sock := filepath.Join(lu.u.HomeDir, ".cache", "libvirt", "libvirt-sock")
	os.Remove(sock)
	d := lu.command(daemon, "--timeout", "600")
	var log bytes.Buffer
	d.Stdout, d.Stderr = &log, &log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { d.Wait(); close(exited) }()
	t.Cleanup(func() {
		d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			d.Process.Kill()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("libvirtd exited at once:\n%s", log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd made no socket at %s in 30s:\n%s", sock, log.String())
		}
	}
	return &lu
}

// command runs name as the user, in its home, with an environment of its
// own and env.
func (lu *libvirtUser) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(lu.uid), Gid: uint32(lu.gid)}}
	}
	cmd.Env = []string{"HOME=" + lu.u.HomeDir, "USER=" + lu.u.Username, "PATH=" + os.Getenv("PATH"),
		"TMPDIR=" + lu.tmp}
	cmd.Dir = lu.u.HomeDir
	return cmd
}

// dibvm runs dibvm as the user and waits at most limit.
func (lu *libvirtUser) dibvm(t *testing.T, env []string, limit time.Duration, args ...string) result {
	t.Helper()
	cmd := lu.command(lu.bin, args...)
	cmd.Env = append(cmd.Env, env...)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "DIBVM_CHECKPOINTS_DIR=") }) {
		cmd.Env = append(cmd.Env, "DIB_NO_CHECKPOINTS=1") // as runDibvm
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	r := result{stdout: out.String(), stderr: errb.String()}
	if !timer.Stop() {
		t.Fatalf("dibvm %s did not finish within %s\n%s", strings.Join(args, " "), limit, r.stderr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// virsh runs virsh as the user on its session daemon.
func (lu *libvirtUser) virsh(t *testing.T, args ...string) string {
	t.Helper()
	cmd := lu.command("virsh", append([]string{"-c", "qemu:///session"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// domains are the dibvm domains the user's daemon runs.
func (lu *libvirtUser) domains(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, n := range strings.Fields(lu.virsh(t, "list", "--all", "--name")) {
		if strings.HasPrefix(n, "dibvm-") {
			names = append(names, n)
		}
	}
	return names
}

// startLong starts `dibvm run --backend libvirt` with a command that
// runs until it is stopped, and returns once the guest runs it and the
// domain is listed.
func (lu *libvirtUser) startLong(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	args = append(append([]string{"run", "--backend", "libvirt"}, args...), "--", "sh", "-c", "echo started; sleep 600")
	cmd := lu.command(lu.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && sc.Text() == "started"
		started <- ok
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-started:
		if !ok {
			t.Fatalf("the guest command did not start\n%s", stderr.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("the guest command never started\n%s", stderr.String())
	}
	doms := lu.domains(t)
	if len(doms) != 1 {
		t.Fatalf("while dibvm runs, the session daemon lists dibvm domains %v, want one", doms)
	}
	return cmd, doms[0]
}

var kernelRelease = regexp.MustCompile(`^\d+\.\d+\S*$`)

// An ordinary user's dibvm runs the helper VM on the user's own libvirt
// session daemon: the domain is transient, QEMU is libvirt's child and
// runs as the user, and the guest has no network interface; it still
// reaches the mirror, through the agent's connection and dibvm's proxy.
func TestLibvirtRunAsUser(t *testing.T) {
	lu := newLibvirtUser(t)
	r := lu.dibvm(t, nil, 10*time.Minute, "run", "--backend", "libvirt", "--", "uname", "-r")
	if r.code != 0 || !kernelRelease.MatchString(strings.TrimSpace(r.stdout)) {
		t.Fatalf("run --backend libvirt -- uname -r: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if doms := lu.domains(t); len(doms) > 0 {
		t.Errorf("after dibvm ended, the daemon still lists %v", doms)
	}

	cmd, name := lu.startLong(t)
	xml := lu.virsh(t, "dumpxml", name)
	for _, want := range []string{"<channel type='unix'>", "name='org.dibvm.agent.0'", "<kernel>", "<serial type='file'>"} {
		if !strings.Contains(xml, want) {
			t.Errorf("the domain has no %s:\n%s", want, xml)
		}
	}
	if strings.Contains(xml, "<interface") {
		t.Errorf("the domain has a network interface; the guest should reach the proxy only over the agent:\n%s", xml)
	}
	if strings.Contains(lu.virsh(t, "dominfo", name), "Persistent:     yes") {
		t.Error("the domain is persistent; dibvm's are transient")
	}
	owners := map[int]bool{}
	for _, pid := range qemuPids(lu.tmp) {
		owners[procUID(pid)] = true
		if len(childQEMU(cmd.Process.Pid)) > 0 {
			t.Error("QEMU is dibvm's child; with libvirt it is the daemon's")
		}
	}
	if len(owners) != 1 || !owners[lu.uid] {
		t.Errorf("QEMU processes of the domain run as uids %v, want only %d", owners, lu.uid)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if doms := lu.domains(t); len(doms) > 0 {
		t.Errorf("after SIGTERM, the daemon still lists %v", doms)
	}
}

// A SIGKILLed dibvm cannot destroy its domain; libvirt does, as the
// connection it was started on closes (VIR_DOMAIN_START_AUTODESTROY).
func TestLibvirtSIGKILLLeavesNoDomain(t *testing.T) {
	lu := newLibvirtUser(t)
	cmd, name := lu.startLong(t)
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for {
		doms := lu.domains(t)
		if len(doms) == 0 && len(qemuPids(lu.tmp)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after dibvm was killed, domains %v and QEMU %v are left (%s)", doms, qemuPids(lu.tmp), name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The egress policy is the same through libvirt: the guest reaches the
// mirror through dibvm's proxy, the proxy refuses a server on the host's
// loopback (and says so), and with --network none nothing is forwarded.
func TestLibvirtEgress(t *testing.T) {
	lu := newLibvirtUser(t)
	port, hits := loopbackServer(t)
	script := `
ls /sys/class/net | tr '\n' ' '
mirror=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 http://deb.debian.org/debian/dists/stable/InRelease || true)
proxied=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:` + port + `/ --noproxy '' || true)
echo "|$mirror|$proxied"`
	r := lu.dibvm(t, nil, 10*time.Minute, "run", "--backend", "libvirt", "--", "sh", "-c", script)
	if got := strings.TrimSpace(r.stdout); got != "lo |200|403" {
		t.Errorf("got %q, want lo |200|403 (interfaces, the mirror, the host's loopback through the proxy)\n%s", got, r.stderr)
	}
	if !strings.Contains(r.stderr, "refused a connection from the helper VM to 127.0.0.1:"+port) {
		t.Errorf("no refusal reported:\n%s", r.stderr)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server was reached %d times", n)
	}
	r = lu.dibvm(t, nil, 10*time.Minute, "run", "--backend", "libvirt", "--network", "none", "--", "sh", "-c",
		"curl -sS -o /dev/null --max-time 10 http://deb.debian.org/debian/dists/stable/InRelease")
	if r.code == 0 || !strings.Contains(r.stderr, "curl:") {
		t.Errorf("with --network none the guest's curl: exit %d\n%s", r.code, r.stderr)
	}
}

// A build through libvirt keeps checkpoints (the scratch disk switches
// to a new layer through libvirt's monitor) and makes the same tree as
// one run by QEMU directly.
func TestLibvirtCreateMatchesQEMU(t *testing.T) {
	lu := newLibvirtUser(t)
	elements := filepath.Join(lu.tmp, "elements")
	if out, err := exec.Command("cp", "-r", testElements(t), elements).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	exec.Command("chmod", "-R", "a+rX", elements).Run()
	env := []string{"ELEMENTS_PATH=" + elements, "DIBVM_CHECKPOINTS_DIR=" + filepath.Join(lu.tmp, "checkpoints")}
	var trees []string
	for _, backend := range []string{"libvirt", "qemu"} {
		out := filepath.Join(lu.tmp, backend)
		r := lu.dibvm(t, env, 10*time.Minute, "create", "--backend", backend, "-n", "-t", "tar", "-o", out, "tiny-os", "checkpoint-steps")
		if r.code != 0 {
			t.Fatalf("create --backend %s: exit %d\n%s", backend, r.code, tail(r.stderr, 30))
		}
		if log := unstamp(r.stdout + r.stderr); backend == "libvirt" && !strings.Contains(log, "install.d/40-slow (") {
			t.Errorf("the libvirt build kept no checkpoint after its slow hook:\n%s", tail(log, 40))
		}
		list, err := exec.Command("tar", "-tvf", out+".tar").Output()
		if err != nil {
			t.Fatal(err)
		}
		// Names, modes and owners; times differ from build to build.
		var entries []string
		for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 {
				entries = append(entries, f[0]+" "+f[1]+" "+strings.Join(f[5:], " "))
			}
		}
		slices.Sort(entries) // tar's order follows the directories'
		trees = append(trees, strings.Join(entries, "\n"))
	}
	if trees[0] != trees[1] {
		t.Errorf("the libvirt build's tree differs from QEMU's:\nlibvirt:\n%s\nqemu:\n%s", tail(trees[0], 20), tail(trees[1], 20))
	}
}

// A user without a session daemon, or with a URI dibvm cannot use, is
// told what to do before anything boots, and nothing is left behind.
func TestLibvirtRefusesBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("needs bin/dibvm")
	}
	tmp := t.TempDir()
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=", "TMPDIR=" + tmp}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--connect", "qemu:///session"}, "qemu:///session: no libvirt session daemon is running for you"},
		{[]string{"--connect", "qemu:///session?socket=" + filepath.Join(home, "gone.sock")}, "the libvirt daemon is not running"},
		{[]string{"--connect", "qemu:///system"}, "qemu:///system: the system daemon runs QEMU as another user"},
		{[]string{"--connect", "xen:///system"}, "--connect xen:///system: dibvm runs the helper VM on libvirt's QEMU driver"},
		{[]string{"--connect", "qemu:///embed?root=/x"}, "give qemu:///session"},
		{[]string{"--connect", "qemu+ssh://builder@hv.example/session"}, "remote libvirt (qemu+ssh) is not supported yet"},
	} {
		r := dibvm(t, env, time.Minute, append(append([]string{"run", "--backend", "libvirt"}, c.args...), "--", "true")...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, want an error with %q:\n%s", c.args, r.code, c.want, r.stderr)
		}
		if left := entries(t, tmp); len(left) > 0 {
			t.Errorf("%v left %v in TMPDIR", c.args, left)
		}
	}
	r := dibvm(t, env, time.Minute, "run", "--backend", "xen", "--", "true")
	if r.code != 2 || !strings.Contains(r.stderr, `--backend "xen"`) {
		t.Errorf("--backend xen: exit %d\n%s", r.code, r.stderr)
	}
}
