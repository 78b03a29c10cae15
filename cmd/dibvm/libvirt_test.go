package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
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
	uri      string // of the daemon virsh asks: the user's default
}

func newLibvirtUser(t *testing.T) *libvirtUser {
	t.Helper()
	needVM(t)
	var lu *libvirtUser
	if os.Geteuid() == 0 {
		lu = testUser(t, "dibvmtest")
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		lu = testUserOf(t, u)
	}
	lu.startSession(t)
	return lu
}

// testUser is the user name, made if need be, with a directory of its
// own and dibvm where it can run it.
func testUser(t *testing.T, name string) *libvirtUser {
	t.Helper()
	return testUserOf(t, ensureUser(t, name))
}

func testUserOf(t *testing.T, u *user.User) *libvirtUser {
	t.Helper()
	lu := &libvirtUser{u: u, uri: "qemu:///session"}
	if u.Uid == "0" {
		lu.uri = "qemu:///system"
	}
	lu.uid, _ = strconv.Atoi(u.Uid)
	lu.gid, _ = strconv.Atoi(u.Gid)
	var err error
	if lu.tmp, err = os.MkdirTemp("", "dibvm-libvirt-test-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(lu.tmp) })
	os.Chown(lu.tmp, lu.uid, lu.gid)
	lu.bin = filepath.Join(lu.tmp, "dibvm")
	copyFile(t, dibvmBin, lu.bin)
	return lu
}

// startSession starts a libvirt session daemon for the user, stopped
// when the test ends.
func (lu *libvirtUser) startSession(t *testing.T) {
	t.Helper()
	daemon := libvirtd(t)
	// One daemon per user: stop one left running by someone else, so
	// that this one owns the socket.
	exec.Command("pkill", "-u", lu.u.Uid, "-x", "libvirtd").Run()
	sock := filepath.Join(lu.u.HomeDir, ".cache", "libvirt", "libvirt-sock")
	os.Remove(sock)
	startDaemon(t, lu.command(daemon, "--timeout", "600"), sock)
}

// startDaemon starts a libvirt daemon, waits for its socket and stops it
// when the test ends.
func startDaemon(t *testing.T, d *exec.Cmd, sock string) {
	t.Helper()
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
}

func libvirtd(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("libvirtd")
	if err != nil {
		if daemon, err = exec.LookPath("/usr/sbin/libvirtd"); err != nil {
			t.Fatal("the libvirt tests need libvirtd and its QEMU driver (scripts/install-deps.sh installs them)")
		}
	}
	return daemon
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
	cmd := lu.command("virsh", append([]string{"-c", lu.uri}, args...)...)
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
// runs as the user, and with --network none there is no network interface
// in the domain. (There is none with the network either: see
// TestLibvirtEgress.)
func TestLibvirtRunAsUser(t *testing.T) {
	lu := newLibvirtUser(t)
	r := lu.dibvm(t, nil, 10*time.Minute, "run", "--backend", "libvirt", "--", "uname", "-r")
	if r.code != 0 || !kernelRelease.MatchString(strings.TrimSpace(r.stdout)) {
		t.Fatalf("run --backend libvirt -- uname -r: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if doms := lu.domains(t); len(doms) > 0 {
		t.Errorf("after dibvm ended, the daemon still lists %v", doms)
	}

	cmd, name := lu.startLong(t, "--network", "none")
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
	// Without a network the guest gets no http_proxy: name the proxy's
	// address, where nothing may answer.
	r = lu.dibvm(t, nil, 10*time.Minute, "run", "--backend", "libvirt", "--network", "none", "--", "sh", "-c",
		"curl -sS -o /dev/null --max-time 10 -x http://10.0.2.100:3128 http://deb.debian.org/debian/dists/stable/InRelease")
	if r.code == 0 || !strings.Contains(r.stderr, "curl:") {
		t.Errorf("with --network none the guest's curl through the proxy's address: exit %d\n%s", r.code, r.stderr)
	}
}

// A build through libvirt, on the user's own session daemon and on
// another user's reached over SSH, makes the same tree as one run by QEMU
// directly. The local one keeps checkpoints (the scratch disk switches to
// a new layer through libvirt's monitor), and a second one resumes from
// them. The remote one keeps none; it uploads the appliance into the
// remote's pool once: a second run uploads only its own disks, its
// guest's traffic leaves through this host's proxy, and nothing of either
// is left there.
func TestLibvirtBuildsMatchQEMU(t *testing.T) {
	lu := newLibvirtUser(t)
	if os.Geteuid() != 0 {
		t.Fatal("the remote build needs root, to make a second user and run sshd")
	}
	remote := testUser(t, "dibvmremote")
	// A password of * cannot be typed, but unlike useradd's ! it leaves
	// the account open to a key.
	if out, err := exec.Command("usermod", "-p", "*", remote.u.Username).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v: %s", err, out)
	}
	remote.startSession(t)
	pool := filepath.Join(remote.tmp, "pool")
	remote.virshMay("pool-destroy", "default")
	remote.virshMay("pool-undefine", "default")
	remote.virsh(t, "pool-define-as", "default", "dir", "--target", pool)
	remote.virsh(t, "pool-build", "default")
	remote.virsh(t, "pool-start", "default")
	uri, agentEnv := sshdFor(t, lu, remote)

	elements := filepath.Join(lu.tmp, "elements")
	if out, err := exec.Command("cp", "-r", testElements(t), elements).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	exec.Command("chmod", "-R", "a+rX", elements).Run()
	env := append([]string{"ELEMENTS_PATH=" + elements}, agentEnv...)
	var trees []string
	for _, b := range []struct{ name, backend, uri string }{
		{"libvirt", "libvirt", ""},
		{"libvirt-again", "libvirt", ""},
		{"remote", "libvirt", uri},
		{"qemu", "qemu", ""},
	} {
		// The same output name, so the second libvirt build has the
		// first's checkpoints; QEMU's has a store of its own, and builds
		// from the start.
		out := filepath.Join(lu.tmp, "out")
		args := []string{"create", "--backend", b.backend, "-n", "-t", "tar", "-o", out, "tiny-os", "checkpoint-steps"}
		if b.uri != "" {
			args = append(args, "--connect", b.uri)
		}
		r := lu.dibvm(t, append(env, "DIBVM_CHECKPOINTS_DIR="+filepath.Join(lu.tmp, "checkpoints-"+b.backend)), 10*time.Minute, args...)
		log := unstamp(r.stdout + r.stderr)
		if r.code != 0 {
			t.Fatalf("%s build: exit %d\n%s", b.name, r.code, tail(log, 30))
		}
		switch b.name {
		case "libvirt":
			if !strings.Contains(log, "install.d/40-slow (") {
				t.Errorf("the libvirt build kept no checkpoint after its slow hook:\n%s", tail(log, 40))
			}
		case "libvirt-again":
			if !strings.Contains(log, "resuming after post-install.d from checkpoint") {
				t.Errorf("the second libvirt build did not resume from the first's last checkpoint:\n%s", log)
			}
		case "remote":
			if !strings.Contains(log, "neither resumes from checkpoints nor keeps any") || strings.Contains(log, "kept the tree") {
				t.Errorf("the remote build kept checkpoints, or did not say it keeps none:\n%s", tail(log, 40))
			}
			if !strings.Contains(log, "uploaded the appliance's initrd.img") {
				t.Errorf("the remote build did not say it uploaded the appliance:\n%s", tail(log, 40))
			}
		case "qemu":
			if strings.Contains(log, "resuming") || !strings.Contains(log, "install.d/40-slow (") {
				t.Errorf("the QEMU build resumed, or kept no checkpoint after its slow hook:\n%s", tail(log, 40))
			}
		}
		list, err := exec.Command("tar", "-tvf", out+".tar").Output()
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(out + ".tar")
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
	for i, name := range []string{"libvirt", "libvirt-again", "remote"} {
		if trees[i] != trees[3] {
			t.Errorf("the %s build's tree differs from QEMU's:\n%s:\n%s\nqemu:\n%s", name, name, tail(trees[i], 20), tail(trees[3], 20))
		}
	}

	// The remote guest's traffic leaves through this host's proxy, with
	// this host's policy: it reaches the mirror, not this host's loopback.
	port, hits := loopbackServer(t)
	script := `uname -r
echo "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 30 http://deb.debian.org/debian/dists/stable/InRelease || true)|$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --noproxy '' http://127.0.0.1:` + port + `/ || true)"`
	r := lu.dibvm(t, agentEnv, 10*time.Minute, "run", "--backend", "libvirt", "--connect", uri, "--", "sh", "-c", script)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !kernelRelease.MatchString(lines[0]) {
		t.Fatalf("a second remote run: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if lines[1] != "200|403" || hits.Load() != 0 || !strings.Contains(r.stderr, "refused a connection from the helper VM to 127.0.0.1:"+port) {
		t.Errorf("the remote guest's network: got %q (want 200|403: the mirror, this host's loopback), %d hits on the loopback server\n%s", lines[1], hits.Load(), r.stderr)
	}
	if strings.Contains(r.stderr, "uploaded") {
		t.Errorf("the second remote run uploaded the appliance again:\n%s", r.stderr)
	}
	left, _ := filepath.Glob(filepath.Join(pool, "dibvm-run-*"))
	if len(left) > 0 {
		t.Errorf("left in the remote's pool: %v", left)
	}
	if doms := remote.domains(t); len(doms) > 0 {
		t.Errorf("the remote daemon still lists %v", doms)
	}
}

// sshdFor starts an sshd on 127.0.0.1 that lets client in as remote with
// a key held by an ssh-agent of client's, and returns the qemu+ssh URI of
// remote's session daemon and the environment that names the agent.
func sshdFor(t *testing.T, client, remote *libvirtUser) (string, []string) {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if sshd, err = exec.LookPath("/usr/sbin/sshd"); err != nil {
			t.Fatal("the remote libvirt test needs OpenSSH's sshd (scripts/install-deps.sh installs it)")
		}
	}
	// Not t.TempDir, whose parent only root may enter: sshd reads the
	// keys as the remote user.
	dir, err := os.MkdirTemp("", "dibvm-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	run := func(cmd *exec.Cmd) {
		t.Helper()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	run(exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key")))
	key := filepath.Join(client.tmp, "id_ed25519")
	run(client.command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key))
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o644)

	// The client's key lives in its agent only.
	sock := filepath.Join(client.tmp, "agent.sock")
	agent := client.command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent made no socket")
		}
	}
	add := client.command("ssh-add", key)
	add.Env = append(add.Env, "SSH_AUTH_SOCK="+sock)
	run(add)
	os.Remove(key)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cfg := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfg, []byte(strings.Join([]string{
		"Port " + port, "ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AllowUsers " + remote.u.Username,
		"UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
		"AllowStreamLocalForwarding yes", "StrictModes no",
	}, "\n")+"\n"), 0o644)
	os.MkdirAll("/run/sshd", 0o755) // its privilege separation directory
	d := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var log bytes.Buffer
	d.Stdout, d.Stderr = &log, &log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Kill()
		d.Wait()
		if t.Failed() {
			t.Logf("sshd's log:\n%s", tail(log.String(), 30))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen:\n%s", log.String())
		}
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(client.tmp, "known_hosts")
	os.WriteFile(known, []byte("[127.0.0.1]:"+port+" "+string(hostPub)), 0o644)
	uri := "qemu+ssh://" + remote.u.Username + "@127.0.0.1:" + port + "/session?known_hosts=" + known
	return uri, []string{"SSH_AUTH_SOCK=" + sock}
}

// virshMay runs virsh as the user and ignores its failure.
func (lu *libvirtUser) virshMay(args ...string) {
	lu.command("virsh", append([]string{"-c", lu.uri}, args...)...).Run()
}

// A user without a session daemon, or with a URI dibvm cannot use, is
// told what to do before anything boots, and nothing is left behind.
func TestLibvirtRefusesBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("needs bin/dibvm")
	}
	tmp := t.TempDir()
	home := t.TempDir()
	// LIBVIRT_AUTOSTART=0: no session daemon is started for a user who
	// runs none (TestLibvirtStartsSessionDaemon starts one).
	env := []string{"HOME=" + home, "XDG_RUNTIME_DIR=", "TMPDIR=" + tmp, "LIBVIRT_AUTOSTART=0"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--connect", "qemu:///session"}, "qemu:///session: no libvirt session daemon is running for you"},
		{[]string{"--connect", "qemu:///session?socket=" + filepath.Join(home, "gone.sock")}, "the libvirt daemon is not running"},
		{[]string{"--connect", "qemu+ssh://builder@127.0.0.1:9/system"}, "dibvm builds on a remote host's session daemon"},
		{[]string{"--connect", "xen:///system"}, "--connect xen:///system: dibvm runs the helper VM on libvirt's QEMU driver"},
		{[]string{"--connect", "qemu:///embed?root=/x"}, "give qemu:///session"},
		{[]string{"--connect", "qemu+tcp://127.0.0.1/session"}, "dibvm reaches a remote daemon over SSH only"},
		// Nothing is dialed without a known_hosts file to check the host.
		{[]string{"--connect", "qemu+ssh://builder@127.0.0.1:9/session?known_hosts=" + filepath.Join(home, "none")}, "no known_hosts file"},
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

// As root, dibvm's default daemon is the host's system daemon, whose QEMU
// runs as its own user (libvirt-qemu) unless told otherwise: the domain's
// static DAC label runs it as dibvm's user, root here, so that it reads
// root's cache and run directory. The domain still goes with dibvm. An
// ordinary user is sent to the session daemon.
func TestLibvirtSystemDaemon(t *testing.T) {
	needVM(t)
	if os.Geteuid() != 0 {
		t.Skip("starts the host's system libvirt daemon, which takes root")
	}
	const sock = "/run/libvirt/libvirt-sock"
	if exec.Command("virsh", "-c", "qemu:///system", "version").Run() != nil {
		// Debian's libvirt-daemon-system makes the daemon's QEMU user;
		// it also brings systemd and a NAT network, which a test host
		// does without, so the test makes the user itself.
		if _, err := user.Lookup("libvirt-qemu"); err != nil {
			if out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", "libvirt-qemu").CombinedOutput(); err != nil {
				t.Fatalf("useradd libvirt-qemu: %v: %s", err, out)
			}
		}
		// The system daemon hands QEMU's output to virtlogd, which
		// systemd would start on demand.
		os.Remove("/run/libvirt/virtlogd-sock")
		startDaemon(t, exec.Command(filepath.Join(filepath.Dir(libvirtd(t)), "virtlogd"), "--timeout", "600"), "/run/libvirt/virtlogd-sock")
		os.Remove(sock)
		startDaemon(t, exec.Command(libvirtd(t), "--timeout", "600"), sock)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	root := testUserOf(t, me)
	if fi, err := os.Stat(me.HomeDir); err != nil || fi.Mode().Perm()&0o001 != 0 {
		t.Fatalf("%s: %v, mode %v: the test needs a home that libvirt-qemu cannot enter, as root's is", me.HomeDir, err, fi.Mode())
	}
	cmd, dom := root.startLong(t)
	x := root.virsh(t, "dumpxml", dom)
	if !strings.Contains(x, "<seclabel type='static' model='dac' relabel='no'>") || !strings.Contains(x, "<label>+0:+0</label>") {
		t.Errorf("the domain has no static DAC label for root:\n%s", x)
	}
	pid, err := os.ReadFile("/run/libvirt/qemu/" + dom + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ps", "-o", "user=", "-p", strings.TrimSpace(string(pid))).Output()
	if err != nil || strings.TrimSpace(string(out)) != "root" {
		t.Errorf("QEMU's user: %q, %v; want root", out, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(30 * time.Second); len(root.domains(t)) > 0; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("a SIGKILLed dibvm left %v on the system daemon", root.domains(t))
		}
	}
	lu := testUser(t, "dibvmtest")
	r := lu.dibvm(t, nil, time.Minute, "run", "--backend", "libvirt", "--connect", "qemu:///system", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "--connect qemu:///system: dibvm uses the host's libvirt daemon only when run as root") {
		t.Errorf("dibvmtest on the system daemon: exit %d\n%s", r.code, r.stderr)
	}
}
