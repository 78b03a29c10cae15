package libvirt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-qemu/qmp"
	"libvirt.org/go/libvirtxml"

	"github.com/dibvm/dibvm/host/vm"
)

// NamePrefix starts the name of every domain dibvm makes, so that
// `virsh list` shows which are dibvm's.
const NamePrefix = "dibvm-"

// Domain is a running transient domain.
type Domain struct {
	Name string
	c    *Conn
	dom  golibvirt.Domain

	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	reason   string // why it shut off, once it has
}

// Arch is libvirt's name for a GOARCH.
func Arch(goarch string) string {
	if goarch == "arm64" {
		return "aarch64"
	}
	return "x86_64"
}

// DomainType is libvirt's domain type for an accelerator.
func DomainType(accel string) string {
	if accel == "tcg" {
		return "qemu"
	}
	return accel
}

// Start starts m as a transient domain (see Create), named in errors
// by m.Name. The serial console, the agent's socket and the disks are
// m's files; m's QMP socket is not used (libvirt owns the monitor: see
// Monitor). For a remote daemon it stages m's files there first (see
// stageRemote).
func (c *Conn) Start(m *vm.Machine) (vm.Instance, error) {
	name := NamePrefix + randomSuffix()
	if c.Remote() {
		st, rm, err := c.stageRemote(m, name)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.stages = append(c.stages, st)
		c.mu.Unlock()
		m = rm
	}
	d, err := domain(m, name)
	if err != nil {
		return nil, err
	}
	dom, err := c.Create(d, m.Name)
	if err != nil {
		return nil, err // not a nil *Domain in an Instance
	}
	return dom, nil
}

// Create starts d as a transient domain that libvirt destroys when this
// connection closes, however dibvm ends (VIR_DOMAIN_START_AUTODESTROY):
// it is never defined, so nothing of it outlives dibvm. A d without a
// name gets NamePrefix and a random suffix. what names the VM in errors.
func (c *Conn) Create(d *libvirtxml.Domain, what string) (*Domain, error) {
	if d.Name == "" {
		d.Name = NamePrefix + randomSuffix()
	}
	if c.system {
		// The system daemon's QEMU runs as its own user (libvirt-qemu,
		// qemu), which cannot open the user's cache and run directory.
		// A static DAC label runs this domain's QEMU as the user
		// instead, as the session daemon and dibvm's own QEMU do, and
		// leaves the files' owners alone. Only the daemon's other
		// confinement (AppArmor, SELinux) still applies.
		d.SecLabel = append(d.SecLabel, libvirtxml.DomainSecLabel{
			Type: "static", Model: "dac", Relabel: "no",
			Label: fmt.Sprintf("+%d:+%d", os.Getuid(), os.Getgid()),
		})
	}
	x, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	dom, err := c.l.DomainCreateXML(x, golibvirt.DomainStartAutodestroy)
	if err != nil {
		return nil, fmt.Errorf("%s: start %s's domain: %w", c.URI, what, err)
	}
	vm := &Domain{Name: dom.Name, c: c, dom: dom, done: make(chan struct{})}
	c.mu.Lock()
	c.domains[dom.Name] = vm
	c.mu.Unlock()
	go vm.watch()
	return vm, nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// DeviceAlias is the alias, and QEMU device id, of the disk with QEMU
// drive id (vm.DiskID): libvirt keeps aliases that start with ua-.
func DeviceAlias(driveID string) string { return "ua-" + driveID }

// CPU is a guest CPU as qemu.CPU chooses it, as libvirt writes it.
func CPU(spec string) *libvirtxml.DomainCPU {
	model, opts, _ := strings.Cut(spec, ",")
	switch model {
	case "host":
		return &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	case "max":
		// pauth-impdef (see qemu.CPU) has no libvirt name.
		return &libvirtxml.DomainCPU{Mode: "maximum"}
	}
	cpu := &libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Check: "none",
		Model: &libvirtxml.DomainCPUModel{Value: model, Fallback: "forbid"}}
	for _, o := range strings.Split(opts, ",") {
		if f, ok := strings.CutPrefix(o, "+"); ok {
			cpu.Features = append(cpu.Features, libvirtxml.DomainCPUFeature{Policy: "require", Name: f})
		}
	}
	return cpu
}

// watch closes done once the domain is gone, with libvirt's reason: from
// its lifecycle event (see Conn.events), or when that was missed, from
// polling its state.
func (d *Domain) watch() {
	for {
		select {
		case <-d.c.l.Disconnected():
			d.stopped("the connection to libvirt closed")
			return
		case <-d.done:
			return
		case <-time.After(250 * time.Millisecond):
		}
		state, reason, err := d.c.l.DomainGetState(d.dom, 0)
		if golibvirt.IsNotFound(err) {
			// A transient domain that shut off is no longer known, and
			// libvirt no longer says why: the console does (see
			// host/machine's stopReason).
			d.stopped("")
			return
		}
		if err != nil {
			continue // a passing failure of the call, not of the VM
		}
		if s := golibvirt.DomainState(state); s == golibvirt.DomainShutoff || s == golibvirt.DomainCrashed {
			d.stopped(shutoffReason(reason))
			return
		}
	}
}

func (d *Domain) stopped(reason string) {
	d.stopOnce.Do(func() {
		d.mu.Lock()
		d.reason = reason
		d.mu.Unlock()
		close(d.done)
	})
}

// stoppedReason says what a lifecycle event's VIR_DOMAIN_EVENT_STOPPED_*
// detail means, for the ones that are not a clean power-off.
func stoppedReason(detail int32) string {
	switch golibvirt.DomainEventStoppedDetailType(detail) {
	case golibvirt.DomainEventStoppedCrashed:
		return "libvirt reports the domain crashed (QEMU's log on the daemon's host says why)"
	case golibvirt.DomainEventStoppedFailed:
		return "libvirt reports the domain failed (QEMU's log on the daemon's host says why)"
	case golibvirt.DomainEventStoppedDestroyed:
		return "the domain was destroyed"
	}
	return ""
}

// shutoffReason says what VIR_DOMAIN_SHUTOFF_* reason means, for the
// ones that are not a clean power-off.
func shutoffReason(r int32) string {
	switch golibvirt.DomainShutoffReason(r) {
	case golibvirt.DomainShutoffCrashed:
		return "libvirt reports the domain crashed"
	case golibvirt.DomainShutoffFailed:
		return "libvirt failed to start the domain"
	case golibvirt.DomainShutoffDestroyed:
		return "the domain was destroyed"
	}
	return ""
}

// Done is closed when the domain has stopped.
func (d *Domain) Done() <-chan struct{} { return d.done }

// ExitError says why the domain stopped, if not by a clean power-off.
func (d *Domain) ExitError() error {
	select {
	case <-d.done:
	default:
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reason == "" {
		return nil
	}
	return fmt.Errorf("%s", d.reason)
}

// Kill destroys the domain at once and waits for it to be gone.
func (d *Domain) Kill() {
	select {
	case <-d.done:
		return
	default:
	}
	d.c.l.DomainDestroy(d.dom)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
	}
}

// Stop destroys the domain: libvirt asks QEMU to quit first, and kills
// it only if it does not.
func (d *Domain) Stop() { d.Kill() }

// MaxRSS is unknown: QEMU is the daemon's child, not dibvm's.
func (d *Domain) MaxRSS() int64 { return 0 }

// XML is the running domain's definition, as libvirt completed it.
func (d *Domain) XML() (string, error) {
	return d.c.l.DomainGetXMLDesc(d.dom, 0)
}

// Monitor is QEMU's monitor reached through libvirt
// (virDomainQemuMonitorCommand), as go-qemu's qmp.Monitor. libvirt keeps
// QMP's events to itself.
func (d *Domain) Monitor() qmp.Monitor { return &monitor{d} }

type monitor struct{ d *Domain }

func (m *monitor) Connect() error    { return nil }
func (m *monitor) Disconnect() error { return nil }

// Run sends cmd and returns QEMU's reply. libvirt hands back the reply
// as it came, an error reply included, and says the call succeeded: the
// error is taken out here, as go-qemu's socket monitor does.
func (m *monitor) Run(cmd []byte) ([]byte, error) {
	out, err := m.d.c.l.QEMUDomainMonitorCommand(m.d.dom, string(cmd), 0)
	if err != nil {
		return nil, err
	}
	return checkReply([]byte(out))
}

// checkReply returns a QMP reply, or its error as an error.
func checkReply(reply []byte) ([]byte, error) {
	var r struct {
		Error *struct {
			Class string `json:"class"`
			Desc  string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return nil, fmt.Errorf("QEMU's reply through libvirt: %w", err)
	}
	if r.Error != nil {
		return nil, fmt.Errorf("%s: %s", r.Error.Class, r.Error.Desc)
	}
	return reply, nil
}

func (m *monitor) Events(ctx context.Context) (<-chan qmp.Event, error) {
	ch := make(chan qmp.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}
