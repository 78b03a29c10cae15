package libvirt

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A session daemon started for the user is started as libvirt's own
// client library starts one (src/remote/remote_sockets.c and
// src/rpc/virnetsocket.c): for a qemu:///session URI without a socket,
// as a user who is not root, unless LIBVIRT_AUTOSTART=0; virtqemud where
// its socket or binary is, else libvirtd; with --timeout=120, so that it
// ends on its own once unused; under a lock in the daemon's runtime
// directory, so that two clients do not both start one.
const (
	// daemonIdle is the daemon's --timeout, libvirt's own choice.
	daemonIdle = "--timeout=120"
	// daemonReady bounds the wait for the started daemon's socket.
	daemonReady = 30 * time.Second
)

// autostarts says whether a session daemon is started for u when none
// answers, as libvirt's client decides it.
func autostarts(u *url.URL, session Session) bool {
	return u.Path == "/session" && u.Query().Get("socket") == "" && !session.NoAutostart && os.Geteuid() != 0
}

// localSocket is the socket of the daemon behind u on this host,
// starting the user's session daemon where none answers and autostarts
// allows it.
func localSocket(u *url.URL, session Session) (string, error) {
	sock, err := findSocket(u, session.RuntimeDir, session.Home)
	if err == nil && answers(sock) || !autostarts(u, session) {
		return sock, err
	}
	if err == nil {
		err = connectError(u.Scheme+"://"+u.Path, sock, syscall.ECONNREFUSED)
	}
	started, serr := startSession(session)
	if serr != nil {
		return "", fmt.Errorf("%w\n(dibvm tried to start one, as libvirt's own clients do, and could not: %v; set LIBVIRT_AUTOSTART=0 to have it not try)", err, serr)
	}
	return started, nil
}

// answers says whether a daemon listens on sock.
func answers(sock string) bool {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// sessionDir is the user's libvirt runtime directory, as libvirt's
// virGetUserRuntimeDirectory: $XDG_RUNTIME_DIR/libvirt, else
// ~/.cache/libvirt.
func sessionDir(session Session) (string, error) {
	switch {
	case session.RuntimeDir != "":
		return filepath.Join(session.RuntimeDir, "libvirt"), nil
	case session.Home != "":
		return filepath.Join(session.Home, ".cache", "libvirt"), nil
	}
	return "", errors.New("neither XDG_RUNTIME_DIR nor a home directory says where its socket would be")
}

// startSession starts the user's session daemon, unless another client
// started one while this one waited for the lock, and returns its
// socket once it answers.
func startSession(session Session) (string, error) {
	dir, err := sessionDir(session)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	name, bin, err := sessionDaemon(dir)
	if err != nil {
		return "", err
	}
	sock := filepath.Join(dir, socketName(name))
	unlock, err := lockSpawn(filepath.Join(dir, name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if answers(sock) {
		return sock, nil
	}
	if err := spawnDaemon(bin); err != nil {
		return "", err
	}
	for deadline := time.Now().Add(daemonReady); !answers(sock); {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s %s started, but %s did not answer within %s", bin, daemonIdle, sock, daemonReady)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if session.Notices != nil {
		fmt.Fprintf(session.Notices, "dibvm: started your libvirt session daemon (%s %s), as virsh would; it ends on its own once unused\n", bin, daemonIdle)
	}
	return sock, nil
}

func socketName(daemon string) string {
	if daemon == "libvirtd" {
		return "libvirt-sock"
	}
	return daemon + "-sock"
}

// sessionDaemon is the daemon to start and its binary, as libvirt's
// client picks it: the one whose (stale) socket is in dir, else the
// modular virtqemud where it is installed, else libvirtd.
func sessionDaemon(dir string) (name, bin string, err error) {
	names := []string{"virtqemud", "libvirtd"}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dir, socketName(n))); err == nil {
			names = []string{n}
			break
		}
	}
	for _, n := range names {
		if bin, err := findDaemon(n); err == nil {
			return n, bin, nil
		}
	}
	return "", "", fmt.Errorf("no %s binary on PATH or in /usr/sbin (install libvirt-daemon, or start a daemon yourself)", strings.Join(names, " or "))
}

// findDaemon finds a daemon's binary on PATH, or in the sbin
// directories an ordinary user's PATH often lacks (libvirt looks in
// its own SBINDIR).
func findDaemon(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin"} {
		if p, err := exec.LookPath(filepath.Join(d, name)); err == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// lockSpawn takes the lock libvirt's clients take before they start a
// daemon: a POSIX record lock on the first byte of NAME.lock in the
// runtime directory.
func lockSpawn(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &lk)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// spawnDaemon starts the daemon in the background, in a session of its
// own: it outlives dibvm, as a daemon libvirt's client starts does, and
// its --timeout ends it. With --daemon the command returns once the
// daemon is set up, or with its error.
func spawnDaemon(bin string) error {
	cmd := exec.Command(bin, "--daemon", daemonIdle)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Should the daemon keep the pipe, its parent's exit still ends the
	// wait.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(daemonReady, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return fmt.Errorf("%s --daemon %s: %v: %s", bin, daemonIdle, err, msg)
	}
	return nil
}
