package imageboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dibvm/dibvm/host/shellquote"
	"github.com/dibvm/dibvm/host/vm"
)

// Login is how RunCommand logs in over SSH.
type Login struct {
	User     string
	Identity string // a private key file; empty leaves it to ssh
	// Wait bounds the boot: from QEMU's start to the first login.
	Wait time.Duration
}

// RunCommand boots the image with its console in a file, logs in over
// SSH with the host's OpenSSH client (the user's keys, agent and
// config), runs command, powers the guest off and returns command's exit
// status. Nothing is left behind: the console file and the known hosts
// of this boot go with it.
func RunCommand(ctx context.Context, o Options, d Disk, l Login, command []string, stdout, stderr io.Writer) (int, error) {
	if o.Network == NetworkNone {
		return 0, errors.New("-- COMMAND logs in over SSH, which needs a network: leave out --network none (--network restricted lets in only SSH)")
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		return 0, errors.New("ssh not found: -- COMMAND logs in with OpenSSH's client (Debian and Ubuntu: apt-get install openssh-client)")
	}
	tmp, err := os.MkdirTemp("", "dibvm-boot-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	o.Console = filepath.Join(tmp, "console.log")
	if o.SSHPort == 0 {
		if o.SSHPort, err = freePort(); err != nil {
			return 0, err
		}
	}
	if UsesProxy(o) && !throughLibvirt(o) {
		proxy, err := StartProxy(&o, tmp)
		if err != nil {
			return 0, err
		}
		defer proxy.Close() // deferred before proc.Kill: runs once QEMU is gone
	}
	proc, err := start(o, d, tmp)
	if err != nil {
		return 0, err
	}
	defer proc.Stop()
	sshArgs := []string{"-p", strconv.Itoa(o.SSHPort), "-o", "BatchMode=yes",
		// This boot's own host key, whatever the image's: a new guest
		// makes one at first boot.
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + filepath.Join(tmp, "known_hosts"),
		"-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"}
	if l.Identity != "" {
		sshArgs = append(sshArgs, "-i", l.Identity, "-o", "IdentitiesOnly=yes")
	}
	sshArgs = append(sshArgs, l.User+"@127.0.0.1")
	if err := waitForLogin(ctx, ssh, sshArgs, proc, l.Wait, o.Console); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, ssh, append(sshArgs, "--", shellquote.Join(command...))...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	status := 0
	err = cmd.Run()
	if ctx.Err() != nil {
		return 0, ctx.Err() // QEMU is killed on the way out
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 255 {
			return 0, fmt.Errorf("ssh %s@127.0.0.1 -p %d: %w", l.User, o.SSHPort, err)
		}
		status = ee.ExitCode()
	}
	// A clean power-off, so that a --persist image is whole; the guest
	// may not let this user do it, and then QEMU is stopped.
	off, cancel := context.WithTimeout(ctx, 30*time.Second)
	exec.CommandContext(off, ssh, append(sshArgs, "--", "sudo -n poweroff || poweroff")...).Run()
	cancel()
	select {
	case <-proc.Done():
	case <-ctx.Done():
	case <-time.After(2 * time.Minute):
		proc.Stop()
	}
	return status, nil
}

// start boots o.Image, which is d, its console in the file o.Console,
// with whatever it needs kept in tmp.
func start(o Options, d Disk, tmp string) (vm.Instance, error) {
	m, err := machine(o, d, tmp)
	if err != nil {
		return nil, err
	}
	return o.backend().Start(m)
}

// waitForLogin tries to log in until it works, QEMU ends, or wait has
// passed.
func waitForLogin(ctx context.Context, ssh string, sshArgs []string, proc vm.Instance, wait time.Duration, console string) error {
	deadline := time.Now().Add(wait)
	var last []byte
	for {
		out, err := exec.CommandContext(ctx, ssh, append(sshArgs, "--", "true")...).CombinedOutput()
		if err == nil {
			return nil
		}
		last = out
		select {
		case <-proc.Done():
			return fmt.Errorf("the VM stopped before a login worked: %v\nits console ended:\n%s", proc.ExitError(), vm.ConsoleTail(console, "  "))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * time.Second):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SSH login within --boot-timeout %s: ssh said %q. Does the image run sshd and let this user in (the devuser element with DIB_DEV_USER_AUTHORIZED_KEYS, and --ssh-user, -i)? Its console ended:\n%s",
				wait, strings.TrimSpace(string(last)), vm.ConsoleTail(console, "  "))
		}
	}
}

// freePort is a loopback TCP port free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
