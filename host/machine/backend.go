package machine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/qmp"
)

// Backends dibvm can run the helper VM on.
const (
	BackendQEMU    = "qemu"    // QEMU as dibvm's own child
	BackendLibvirt = "libvirt" // a transient domain of the user's libvirt
)

// A backend runs the helper VM that the rest of this package describes
// as a qemu.Config and then drives the same way whatever runs it: boot
// requirements, the agent over virtio-serial, egress, fallback from a
// hypervisor that does not boot.
type backend interface {
	// accelerators are those to try for a choice of auto, kvm, hvf or
	// tcg, in order.
	accelerators(choice, arch string) ([]string, error)
	start(cfg *qemu.Config) (vm, error)
	// monitor connects to v's QMP monitor.
	monitor(ctx context.Context, v vm, cfg *qemu.Config) (*qmp.Monitor, error)
	// disk names the disk with QEMU drive id (qemu.DriveID) for QMP's
	// block commands, as their arguments.
	disk(ctx context.Context, mon *qmp.Monitor, id string) (map[string]any, error)
	// fetch brings the first length bytes of the VM's disk behind the
	// local path back to it, for a VM that does not write that file.
	fetch(path string, length int64) error
	// forwardsEgress says the guest has no network interface: it reaches
	// the egress proxy through the agent's connection (see boot).
	forwardsEgress() bool
	// local says the VM runs on this host, with its QEMU binary.
	local() bool
	close()
}

// vm is a running helper VM as its backend runs it.
type vm interface {
	Done() <-chan struct{}
	// ExitError says how the VM ended, if not by a clean power-off.
	ExitError() error
	Kill()
	// MaxRSS is the peak resident set of its QEMU in bytes, once it has
	// ended, where dibvm can know it (0 where not).
	MaxRSS() int64
}

func newBackend(opts Options) (backend, error) {
	switch opts.Backend {
	case "", BackendQEMU:
		return qemuBackend{}, nil
	case BackendLibvirt:
		uri := opts.LibvirtURI
		if uri == "" {
			uri = libvirt.DefaultURI()
		}
		c, err := libvirt.Connect(uri)
		if err != nil {
			return nil, err
		}
		c.Notices = opts.Notices
		return &libvirtBackend{c}, nil
	}
	return nil, fmt.Errorf("no backend %q: use qemu or libvirt", opts.Backend)
}

// qemuBackend runs QEMU as dibvm's child.
type qemuBackend struct{}

func (qemuBackend) accelerators(choice, arch string) ([]string, error) {
	return qemu.Accelerators(choice, arch)
}

func (qemuBackend) start(cfg *qemu.Config) (vm, error) {
	p, err := qemu.Start(cfg)
	if err != nil {
		return nil, err // not a nil *qemu.Process in a vm
	}
	return p, nil
}

func (qemuBackend) monitor(ctx context.Context, _ vm, cfg *qemu.Config) (*qmp.Monitor, error) {
	return qmp.Dial(ctx, cfg.QMPSocket)
}

func (qemuBackend) fetch(string, int64) error { return nil }

func (qemuBackend) disk(_ context.Context, _ *qmp.Monitor, id string) (map[string]any, error) {
	return map[string]any{"device": id}, nil
}

// forwardsEgress is false: QEMU's user networking with one guestfwd rule
// runs dibvm's relay for each connection (see host/egress), straight
// into the proxy.
func (qemuBackend) forwardsEgress() bool { return false }
func (qemuBackend) local() bool          { return true }
func (qemuBackend) close()               {}

// libvirtBackend runs a transient domain of a libvirt daemon. libvirt
// cannot express QEMU's guestfwd without passing QEMU arguments through
// (which taints the domain and, for a daemon on another host or user,
// would run dibvm's relay where dibvm is not), so the guest has no
// network interface at all and reaches the proxy over the agent's SSH
// connection, as ssh -R does: the policy is the host's own whichever
// daemon runs the guest.
type libvirtBackend struct{ c *libvirt.Conn }

func (b *libvirtBackend) accelerators(choice, arch string) ([]string, error) {
	return b.c.Accelerators(choice, arch)
}

func (b *libvirtBackend) start(cfg *qemu.Config) (vm, error) {
	d, err := b.c.Start(cfg)
	if err != nil {
		return nil, err // not a nil *Domain in a vm
	}
	return d, nil
}

func (b *libvirtBackend) monitor(ctx context.Context, v vm, _ *qemu.Config) (*qmp.Monitor, error) {
	return qmp.Attach(ctx, v.(*libvirt.Domain).Monitor())
}

// disk finds the disk's top block node: libvirt attaches disks with
// -blockdev, so no drive has a name, but the device's drive property (the
// device's id is the alias DomainXML gave it) names the node it writes.
// A snapshot by node needs a name for the new overlay's node too.
func (b *libvirtBackend) disk(ctx context.Context, mon *qmp.Monitor, id string) (map[string]any, error) {
	var node string
	err := mon.Run(ctx, "qom-get", map[string]any{"path": "/machine/peripheral/" + libvirt.DeviceAlias(id), "property": "drive"}, &node)
	if err != nil {
		return nil, err
	}
	overlay := make([]byte, 6)
	rand.Read(overlay)
	return map[string]any{"node-name": node, "snapshot-node-name": "dibvm-" + hex.EncodeToString(overlay)}, nil
}

func (b *libvirtBackend) fetch(path string, length int64) error { return b.c.Fetch(path, length) }

func (b *libvirtBackend) forwardsEgress() bool { return true }
func (b *libvirtBackend) local() bool          { return !b.c.Remote() }
func (b *libvirtBackend) close()               { b.c.Close() }
