package vm

import (
	"context"

	"github.com/dibvm/dibvm/host/qmp"
)

// Backend runs machines: QEMU as dibvm's child, or a transient domain
// of a libvirt daemon.
type Backend interface {
	// Accelerators are those to try for a choice of auto, kvm, hvf or
	// tcg, in order, for a goarch guest.
	Accelerators(choice, goarch string) ([]string, error)
	// Start boots m.
	Start(m *Machine) (Instance, error)
	// Monitor connects to the QMP monitor of i, started from m.
	Monitor(ctx context.Context, i Instance, m *Machine) (*qmp.Monitor, error)
	// DiskNode names the disk with id DiskID(n) for QMP's block
	// commands, as their arguments.
	DiskNode(ctx context.Context, mon *qmp.Monitor, id string) (map[string]any, error)
	// Fetch brings the first length bytes of the VM's disk behind the
	// local path back to it, for a VM that does not write that file.
	Fetch(path string, length int64) error
	// Guestfwd says the backend runs a Network's Guestfwd rule: QEMU
	// starts the command it names. Where it does not, a guest reaches a
	// host service only over its agent's connection.
	Guestfwd() bool
	// Local says the VM runs on this host, with its QEMU binary.
	Local() bool
	Close() error
}

// Instance is a running machine.
type Instance interface {
	Done() <-chan struct{}
	// ExitError says how the VM ended, if not by a clean power-off.
	ExitError() error
	// Stop ends the VM, letting QEMU flush its disks first (for a
	// while), and waits for it to be gone.
	Stop()
	// Kill ends the VM at once and waits for it to be gone.
	Kill()
	// MaxRSS is the peak resident set of its QEMU in bytes, once it has
	// ended, where dibvm can know it (0 where not).
	MaxRSS() int64
}
