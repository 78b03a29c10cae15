package machine

import (
	"fmt"
	"io"
	"net"

	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/vm"
)

// Backends dibvm can run the helper VM on.
const (
	BackendQEMU    = "qemu"    // QEMU as dibvm's child
	BackendLibvirt = "libvirt" // a transient domain of the user's libvirt
)

// newBackend is the vm.Backend opts name. The rest of this package
// drives the helper the same way whatever runs it: boot requirements,
// the agent over virtio-serial, the host's service, fallback from a
// hypervisor that does not boot.
func newBackend(opts Options) (vm.Backend, error) {
	switch opts.Backend {
	case "", BackendQEMU:
		return qemu.Backend{Host: opts.QEMU}, nil
	case BackendLibvirt:
		uri := opts.LibvirtURI
		if uri == "" {
			uri = libvirt.DefaultURI()
		}
		c, err := libvirt.Connect(uri, opts.Libvirt)
		if err != nil {
			return nil, err
		}
		c.Notices = opts.Notices
		return c, nil
	}
	return nil, fmt.Errorf("no backend %q: use qemu or libvirt", opts.Backend)
}

// Service is a service of the host's that the guest reaches at one
// address, its only way out when it has a network (the egress proxy:
// see host/gateway). The machine knows only how to lead the guest there.
// QEMU leads each connection to Addr into a unix socket in the run
// directory, with a guestfwd rule (Listen). A backend that runs no such
// rule (libvirt cannot express it without passing QEMU arguments
// through, and for a daemon on another host the rule would run where
// dibvm is not) gives the guest no interface at all: the agent listens
// at Addr in the guest and hands each connection to the host over its
// SSH connection, as ssh -R does (Serve). Either way the service is the
// host's own, whichever daemon runs the guest.
type Service interface {
	// Addr is where the guest reaches the service, host:port.
	Addr() string
	// Listen serves on the unix socket sock and returns the guestfwd
	// rule that leads the guest's connections at Addr to it. dir is the
	// run directory, for files of the service's own.
	Listen(dir, sock string) (rule string, c io.Closer, err error)
	// Serve serves the connections ln accepts; dir is as for Listen.
	Serve(dir string, ln net.Listener) (io.Closer, error)
}

// listen starts s on a socket in the run directory and leads the guest's
// network there.
func (m *Machine) listen(s Service) error {
	rule, c, err := s.Listen(m.dir.Path, m.dir.File("egress.sock"))
	if err != nil {
		return err
	}
	m.service = c
	m.spec.Network = &vm.Network{Guestfwd: rule}
	return nil
}

// serve starts s on the connections the agent forwards from its address.
func (m *Machine) serve(s Service) error {
	ln, err := m.Client.Listen(s.Addr())
	if err != nil {
		return err
	}
	if m.service, err = s.Serve(m.dir.Path, ln); err != nil {
		ln.Close()
		return err
	}
	return nil
}
