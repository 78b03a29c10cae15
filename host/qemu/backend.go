package qemu

import (
	"context"

	"github.com/dibvm/dibvm/host/qmp"
	"github.com/dibvm/dibvm/host/vm"
)

// Backend runs machines as QEMU, dibvm's own child, tied to its life: a
// console on the terminal keeps QEMU in dibvm's process group (see
// StartInteractive), any other puts it in a group of its own.
type Backend struct{ Host Host }

// Accelerators are this host's for a goarch guest (see Host.Accelerators).
func (b Backend) Accelerators(choice, goarch string) ([]string, error) {
	return b.Host.Accelerators(choice, goarch)
}

// Start starts QEMU for m.
func (b Backend) Start(m *vm.Machine) (vm.Instance, error) {
	start := StartArgs
	if m.Console.Terminal {
		start = StartInteractive
	}
	p, err := start(m.Binary, Args(m))
	if err != nil {
		return nil, err // not a nil *Process in an Instance
	}
	return p, nil
}

// Monitor dials m's QMP socket.
func (Backend) Monitor(ctx context.Context, _ vm.Instance, m *vm.Machine) (*qmp.Monitor, error) {
	return qmp.Dial(ctx, m.Monitor)
}

// DiskNode names a disk by its drive id.
func (Backend) DiskNode(_ context.Context, _ *qmp.Monitor, id string) (map[string]any, error) {
	return map[string]any{"device": id}, nil
}

// Fetch has nothing to do: QEMU writes the host's file itself.
func (Backend) Fetch(string, int64) error { return nil }

// Guestfwd is true: QEMU's user network starts the command of a
// guestfwd rule for each of the guest's connections.
func (Backend) Guestfwd() bool { return true }

// Local is true: QEMU runs here.
func (Backend) Local() bool  { return true }
func (Backend) Close() error { return nil }
