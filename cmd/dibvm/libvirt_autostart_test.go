package main_test

import (
	"bytes"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sessionUser is the libvirt tests' user, without a daemon: a runtime
// directory of its own, where none runs.
func sessionUser(t *testing.T) (*libvirtUser, string) {
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
	rt := filepath.Join(lu.tmp, "run")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(rt, lu.uid, lu.gid)
	// The daemons dibvm starts outlive it, as libvirt's do: they are
	// ended here, every process whose environment names this runtime
	// directory.
	t.Cleanup(func() { endProcessesOf(t, "XDG_RUNTIME_DIR="+rt) })
	return lu, rt
}

// processesWith are the processes whose environment holds entry.
func processesWith(entry string) []int {
	var pids []int
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range envs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(append([]byte{0}, b...), []byte("\x00"+entry+"\x00")) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pids = append(pids, pid)
	}
	return pids
}

func endProcessesOf(t *testing.T, entry string) {
	for _, pid := range processesWith(entry) {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for deadline := time.Now().Add(10 * time.Second); len(processesWith(entry)) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, pid := range processesWith(entry) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			break
		}
	}
	if left := processesWith(entry); len(left) > 0 {
		t.Errorf("processes %v left running", left)
	}
}

// Where no session daemon runs, dibvm starts one for the user as
// libvirt's own clients do (virsh would): in the background, with
// --timeout=120, and it outlives dibvm; the helper VM then runs on it.
func TestLibvirtStartsSessionDaemon(t *testing.T) {
	lu, rt := sessionUser(t)
	env := []string{"XDG_RUNTIME_DIR=" + rt}
	r := lu.dibvm(t, env, 10*time.Minute, "run", "--backend", "libvirt", "--network", "none", "--", "echo", "hello")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "hello" {
		t.Fatalf("run --backend libvirt: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "dibvm: started your libvirt session daemon (") {
		t.Errorf("dibvm did not say it started the daemon:\n%s", r.stderr)
	}
	var daemon int
	for _, pid := range processesWith("XDG_RUNTIME_DIR=" + rt) {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if bytes.Contains(cmdline, []byte("--timeout=120")) && (bytes.Contains(cmdline, []byte("libvirtd")) || bytes.Contains(cmdline, []byte("virtqemud"))) {
			daemon = pid
		}
	}
	if daemon == 0 {
		t.Fatalf("after dibvm ended, no daemon with --timeout=120 runs in %s", rt)
	}
	if procUID(daemon) != lu.uid {
		t.Errorf("the daemon runs as uid %d, want %d", procUID(daemon), lu.uid)
	}
	sid, _ := unix.Getsid(daemon)
	if mine, _ := unix.Getsid(0); sid == mine {
		t.Errorf("the daemon is in the test's session %d; it should have one of its own", sid)
	}
	// A second dibvm finds it running and starts none.
	r = lu.dibvm(t, env, time.Minute, "doctor")
	if strings.Contains(r.stderr, "started your libvirt session daemon") || !strings.Contains(r.stdout, "ok") {
		t.Errorf("doctor, with the daemon running: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// Where the daemon cannot be started, the error is the one without a
// daemon, and says what dibvm tried; LIBVIRT_AUTOSTART=0 keeps dibvm
// from trying, as it keeps libvirt's clients.
func TestLibvirtSessionDaemonFailsClearly(t *testing.T) {
	lu, rt := sessionUser(t)
	// A runtime directory the user cannot make its libvirt directory in.
	os.Chmod(rt, 0o500)
	for _, c := range []struct {
		env  []string
		want []string
	}{
		{[]string{"XDG_RUNTIME_DIR=" + rt}, []string{"qemu:///session: no libvirt session daemon is running for you", "(dibvm tried to start one, as libvirt's own clients do, and could not: mkdir " + rt + "/libvirt: permission denied; set LIBVIRT_AUTOSTART=0"}},
		{[]string{"XDG_RUNTIME_DIR=" + rt, "LIBVIRT_AUTOSTART=0"}, []string{"qemu:///session: no libvirt session daemon is running for you"}},
	} {
		r := lu.dibvm(t, c.env, time.Minute, "run", "--backend", "libvirt", "--", "true")
		for _, w := range c.want {
			if r.code != 1 || !strings.Contains(r.stderr, w) {
				t.Errorf("%v: exit %d, want 1 and %q:\n%s", c.env, r.code, w, r.stderr)
			}
		}
		if len(c.want) == 1 && strings.Contains(r.stderr, "tried to start") {
			t.Errorf("with LIBVIRT_AUTOSTART=0 dibvm tried to start a daemon:\n%s", r.stderr)
		}
	}
	if left := processesWith("XDG_RUNTIME_DIR=" + rt); len(left) > 0 {
		t.Errorf("processes %v run in %s", left, rt)
	}
}

// A socket left by a daemon that died refuses connections: dibvm starts
// the daemon it belonged to, as libvirt's client picks it, which takes
// the socket's place.
func TestLibvirtSessionDaemonReplacesStaleSocket(t *testing.T) {
	lu, rt := sessionUser(t)
	dir := filepath.Join(rt, "libvirt")
	os.Mkdir(dir, 0o700)
	os.Chown(dir, lu.uid, lu.gid)
	sock := filepath.Join(dir, "libvirt-sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	os.Chown(sock, lu.uid, lu.gid)
	r := lu.dibvm(t, []string{"XDG_RUNTIME_DIR=" + rt}, 2*time.Minute, "doctor")
	if !strings.Contains(r.stderr, "dibvm: started your libvirt session daemon (") || !strings.Contains(r.stderr, "libvirtd --timeout=120)") ||
		!regexp.MustCompile(`ok +qemu:///session: libvirt `).MatchString(r.stdout) {
		t.Errorf("doctor with a stale libvirt-sock: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
