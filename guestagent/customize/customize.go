// Package customize opens an existing disk image in the helper VM and
// runs a command in its root as root: the guest's side of dibvm
// customize, what people did by hand with kpartx, mount and chroot.
package customize

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/chroot"
	"github.com/dibvm/dibvm/guestagent/imageroot"
)

// mountDir is where the image's root is mounted in the helper.
const mountDir = "/image"

// Main mounts the image disk's filesystems, runs args[0] with /bin/sh
// chrooted into its root, puts the image back and returns the command's
// exit status, or api.CustomizeExitOpen.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: "+api.CustomizeCommand+" COMMAND-LINE")
		return 2
	}
	status, err := run(args[0], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dibvm: %v\n", err)
		return api.CustomizeExitOpen
	}
	return status
}

func run(line string, stdin io.Reader, stdout, stderr io.Writer) (status int, err error) {
	mounted, err := imageroot.Open(api.ImageSerial, mountDir, stderr)
	if err != nil {
		return 0, err
	}
	defer func() {
		if uerr := mounted.Unmount(); uerr != nil && err == nil {
			err = fmt.Errorf("put the image back: %w", uerr)
		}
	}()
	target := chroot.New(mountDir)
	if err := target.MountAll(); err != nil {
		target.UnmountAll()
		return 0, err
	}
	defer func() {
		// What the command left running in the root (a gpg-agent that
		// gpg started, a daemon a package's script started) holds it
		// busy: stop it, as DIB stops what its chroot left, before the
		// image is put back.
		chroot.KillIn(mountDir)
		target.UnmountAll()
		if rerr := target.RestoreResolvConf(); rerr != nil && err == nil {
			err = fmt.Errorf("put the image's resolv.conf back: %w", rerr)
		}
	}()
	cmd := exec.Command("chroot", mountDir, "/bin/sh", "-c", line)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}
