package libvirt

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/dibvm/dibvm/host/qmp"
	"github.com/dibvm/dibvm/host/vm"
)

// Conn is a vm.Backend: Start, Accelerators, Fetch and Close are in
// domain.go and conn.go.
var _ vm.Backend = (*Conn)(nil)

// Monitor is the domain's QMP monitor, reached through libvirt.
func (c *Conn) Monitor(ctx context.Context, i vm.Instance, _ *vm.Machine) (*qmp.Monitor, error) {
	return qmp.Attach(ctx, i.(*Domain).Monitor())
}

// DiskNode finds the disk's top block node: libvirt attaches disks with
// -blockdev, so no drive has a name, but the device's drive property (the
// device's id is the alias the domain gave it) names the node it writes.
// A snapshot by node needs a name for the new overlay's node too.
func (c *Conn) DiskNode(ctx context.Context, mon *qmp.Monitor, id string) (map[string]any, error) {
	var node string
	err := mon.Run(ctx, "qom-get", map[string]any{"path": "/machine/peripheral/" + DeviceAlias(id), "property": "drive"}, &node)
	if err != nil {
		return nil, err
	}
	overlay := make([]byte, 6)
	rand.Read(overlay)
	return map[string]any{"node-name": node, "snapshot-node-name": "dibvm-" + hex.EncodeToString(overlay)}, nil
}

// Guestfwd is false: libvirt starts QEMU with -sandbox spawn=deny, and
// a daemon elsewhere would run the rule's command where dibvm is not.
func (c *Conn) Guestfwd() bool { return false }

// Local says the daemon is on this host.
func (c *Conn) Local() bool { return !c.Remote() }
