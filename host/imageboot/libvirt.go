package imageboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/dibvm/dibvm/host/libvirt"
)

// Through libvirt the image boots as a transient domain that goes when
// dibvm's connection does, on the same machine, firmware and disk as
// under dibvm's own QEMU, and the same network but for NetworkProxy,
// which libvirt cannot run (see ErrLibvirtProxy). Its overlay, firmware
// variables and console socket are made in the boot's temporary
// directory (see libvirt.Conn.Start).

// Escape is the key that ends a console through libvirt, Ctrl-], as in
// virsh console.
const Escape = 0x1d

// consoleSocket is the serial console's socket in tmp, when the console
// is not a file.
func consoleSocket(tmp string) string { return filepath.Join(tmp, "console.sock") }

// Console boots o.Image, which is d, as a domain of o.Backend, and joins
// its serial console to in and out until the VM stops or in gives Escape;
// then the domain goes. in should be a terminal in raw mode, so that
// keys such as Ctrl-C reach the guest.
//
// The console passes raw, as a VM's console does under QEMU's own stdio
// (see bootHere in host/cli): the user asked for the image's console, a
// terminal session with the guest, which needs the terminal's sequences
// (its login, an editor). Everything dibvm itself shows of the guest
// (the console's end when no login comes) goes through termsafe.
func Console(ctx context.Context, o Options, d Disk, in io.Reader, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "dibvm-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o.Console = ""
	dom, err := startDomain(o, d, tmp)
	if err != nil {
		return err
	}
	defer dom.Kill()
	return joinConsole(ctx, dom, consoleSocket(tmp), in, out)
}

// startDomain boots o.Image, which is d, as a domain of o.Backend, with
// what it needs kept in tmp.
func startDomain(o Options, d Disk, tmp string) (*libvirt.Domain, error) {
	if !throughLibvirt(o) {
		return nil, errors.New("the console of a domain needs --backend libvirt")
	}
	m, err := machine(o, d, tmp)
	if err != nil {
		return nil, err
	}
	dom, err := o.Backend.Start(m)
	if err != nil {
		return nil, err
	}
	return dom.(*libvirt.Domain), nil
}

// joinConsole joins the console at sock to in and out until the domain
// stops, in gives Escape or ctx is done; then the domain goes.
func joinConsole(ctx context.Context, dom *libvirt.Domain, sock string, in io.Reader, out io.Writer) error {
	// QEMU listens before it runs the guest, and libvirt starts the
	// guest before it returns.
	c, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Errorf("%s: its console: %w", dom.Name, err)
	}
	defer c.Close()
	copied := make(chan struct{})
	go func() {
		io.Copy(out, c)
		close(copied)
	}()
	// The reader is left in its Read when the console ends otherwise:
	// dibvm exits then.
	escaped := make(chan struct{})
	go func() {
		b := make([]byte, 1024)
		for {
			n, err := in.Read(b)
			head, _, found := bytes.Cut(b[:n], []byte{Escape})
			if _, werr := c.Write(head); werr != nil {
				return
			}
			if found {
				close(escaped)
				return
			}
			if err != nil {
				// No more input (dibvm run from a script, its stdin
				// closed): the guest runs on, as under QEMU.
				return
			}
		}
	}()
	var result error
	select {
	case <-dom.Done():
		if err := dom.ExitError(); err != nil {
			result = fmt.Errorf("%s: %w", dom.Name, err)
		}
	case <-escaped:
	case <-ctx.Done():
		result = ctx.Err()
	}
	// What the guest wrote last is out before the terminal is the
	// user's again.
	dom.Kill()
	c.Close()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	return result
}

// CheckURI says why the libvirt daemon at uri cannot boot an image.
func CheckURI(uri string) error {
	if libvirt.IsRemote(uri) {
		return fmt.Errorf("--connect %s: dibvm boots an image on a libvirt daemon on this host only: copy the image to that host and boot it there", uri)
	}
	return libvirt.CheckURI(uri)
}
