package imageboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/dibvm/dibvm/host/egress"
)

// UsesProxy says o's network is the egress proxy's.
func UsesProxy(o Options) bool { return o.Network == NetworkProxy || o.Network == "" }

// StartProxy starts the egress proxy of NetworkProxy, with o's policy,
// listening on a unix socket in dir, and points o's network at it: QEMU
// starts dibvm's relay (egress.RelayArg) for each of the guest's
// connections to egress.GuestAddr, as for a build. The caller closes
// the proxy once QEMU has ended.
func StartProxy(o *Options, dir string) (io.Closer, error) {
	if !o.backend().Guestfwd() {
		return nil, ErrLibvirtProxy
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "egress.sock")
	p, err := egress.Listen(sock, egress.Options{Policy: o.Egress, Notices: o.Notices})
	if err != nil {
		return nil, fmt.Errorf("start the egress proxy: %w", err)
	}
	o.guestfwd = egress.GuestfwdRule(self, sock)
	return p, nil
}

// ErrLibvirtProxy says why NetworkProxy is not for libvirt: it starts QEMU in its seccomp sandbox, which
// forbids QEMU to start processes (-sandbox spawn=deny), so QEMU cannot
// start the relay that leads to the proxy; and an image, unlike the
// helper, has no agent to forward the proxy's address over.
var ErrLibvirtProxy = errors.New("--network proxy: libvirt runs QEMU in a sandbox that cannot start dibvm's relay to the egress proxy; through libvirt give --network restricted (nothing out, SSH in), nat (QEMU's open user network, the host's loopback as 10.0.2.2) or none")

// Interactive boots o.Image, which is d, with its serial console and
// QEMU's monitor on the terminal, and the egress proxy of NetworkProxy
// in this process, until QEMU ends or ctx is done. Unlike a boot on
// another network, dibvm cannot hand the terminal to QEMU and go: the
// proxy is dibvm's.
func Interactive(ctx context.Context, o Options, d Disk) error {
	tmp, err := os.MkdirTemp("", "dibvm-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o.Console = ""
	// QEMU puts the terminal in raw mode: the proxy's notices need
	// their carriage returns.
	if o.Notices != nil {
		o.Notices = crlf{o.Notices}
	}
	proxy, err := StartProxy(&o, tmp)
	if err != nil {
		return err
	}
	defer proxy.Close()
	m, err := machine(o, d, tmp)
	if err != nil {
		return err
	}
	// QEMU restores the terminal when it exits, but not when it is
	// killed.
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		if st, err := term.GetState(fd); err == nil {
			defer term.Restore(fd, st)
		}
	}
	p, err := o.backend().Start(m)
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Stop()
		return ctx.Err()
	}
	return p.ExitError()
}

// crlf ends each line with a carriage return too, for a terminal in raw
// mode.
type crlf struct{ w io.Writer }

func (c crlf) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+8)
	for _, b := range p {
		if b == '\n' {
			out = append(out, '\r')
		}
		out = append(out, b)
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
