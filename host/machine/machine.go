// Package machine boots the helper VM and hands back a connected control
// channel: it writes the input disk, describes the helper as a
// vm.Machine and starts it on a backend (QEMU or libvirt), picks an
// accelerator that really runs the guest (falling back to TCG when a
// hypervisor opens but never boots), leads the guest to the host service
// its caller hands in, and stops everything again without leaving a
// trace.
package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/qmp"
	"github.com/dibvm/dibvm/host/rundir"
	"github.com/dibvm/dibvm/host/vm"
	"github.com/dibvm/dibvm/vmimage"
)

// Options describe the VM to boot.
type Options struct {
	// Arch is the guest's architecture as GOARCH names it (amd64,
	// arm64); empty means the host's. It must match the appliance's.
	Arch string
	// Backend runs the VM: BackendQEMU (the default) or BackendLibvirt,
	// on the daemon at LibvirtURI (default libvirt.DefaultURI).
	Backend    string
	LibvirtURI string
	// QEMU is this host's QEMU as the user set it up; Libvirt is the
	// user's session, which reaches a libvirt daemon.
	QEMU    qemu.Host
	Libvirt libvirt.Session
	// RunDir is where run directories go; empty is rundir's choice.
	RunDir string
	Accel  string // auto, kvm, hvf or tcg
	Memory int    // MiB
	CPUs   int
	// CPUModel is the guest CPU under TCG (see vm.Machine.CPUModel).
	CPUModel  string
	Network   bool
	Appliance *vmimage.Appliance
	Inputs    []iso.File // extra files for the input disk
	// Service is the host's service the guest reaches at its Addr: with
	// Network, the guest's only way out. A Network needs one.
	Service Service
	// Disks are blank sparse disks made in the run directory, removed
	// with it: scratch space and the output disk of a build.
	Disks []Disk

	// BootTimeout bounds the boot under TCG. HypervisorTimeout bounds it
	// under kvm or hvf, which should be far faster; past it, auto falls
	// back to TCG.
	BootTimeout       time.Duration
	HypervisorTimeout time.Duration

	// AccelMemo, when set, is a file where auto remembers a hypervisor
	// that failed to boot, so later runs on this host skip it.
	AccelMemo string

	// Notices gets one-line messages meant for the user (fallbacks,
	// refused connections).
	Notices io.Writer
}

// Disk is a disk for the guest, found there by its serial: a blank
// sparse file of Size bytes in the run directory; or, with Source, an
// existing file of the host's, which the guest can only read; or, with
// Layer, a qcow2 image of the caller's that the guest writes (a layer
// over the checkpoints it resumes from: see Snapshot).
type Disk struct {
	Serial string
	Size   int64
	Source string
	Layer  string
}

// Machine is a booted helper VM.
type Machine struct {
	Arch     string // the guest's, as GOARCH names it
	Accel    string
	BootTime time.Duration // from QEMU start to agent ready
	Client   *agentclient.Client

	backend vm.Backend
	spec    *vm.Machine
	proc    vm.Instance
	mon     *qmp.Monitor
	drives  map[string]string // serial → QEMU drive id
	layers  map[string]string // serial → the caller's qcow2 layer
	dir     *rundir.Dir
	service io.Closer // the Service, serving this guest

	// consoleFlood is set when the guest outgrew its console (see
	// watchConsole).
	consoleFlood atomic.Bool

	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// Start boots a VM as opts say and returns once the agent answers.
func Start(ctx context.Context, opts Options) (*Machine, error) {
	if opts.Arch == "" {
		opts.Arch = runtime.GOARCH
	}
	if opts.Network && opts.Service == nil {
		return nil, errors.New("the helper VM's network needs a host service to lead it to")
	}
	if err := checkMemory(opts); err != nil {
		return nil, err
	}
	b, err := newBackend(opts)
	if err != nil {
		return nil, err
	}
	// The emulator is the host's own unless the VM runs elsewhere, where
	// the daemon picks its own (and the memo, keyed by it, is not kept).
	binary := ""
	if b.Local() {
		if binary, err = opts.QEMU.FindBinary(opts.Arch); err != nil {
			b.Close()
			return nil, err
		}
	} else {
		opts.AccelMemo = ""
	}
	accels, err := b.Accelerators(opts.Accel, opts.Arch)
	if err != nil {
		b.Close()
		return nil, err
	}
	if opts.Notices == nil {
		opts.Notices = io.Discard
	}
	auto := len(accels) > 1
	if auto {
		accels = skipRemembered(opts.AccelMemo, binary, accels, opts.Notices)
	}
	for i, accel := range accels {
		m, err := boot(ctx, b, binary, accel, opts)
		var kp *bootPanicError
		if errors.As(err, &kp) {
			fmt.Fprintf(opts.Notices, "dibvm: the helper VM's kernel panicked while booting under TCG (%s); booting it again\n", kp.reason)
			m, err = boot(ctx, b, binary, accel, opts)
		}
		if err == nil {
			m.backend = b
			return m, nil
		}
		var nb *notBootingError
		if i == len(accels)-1 || !errors.As(err, &nb) {
			b.Close()
			return nil, err
		}
		fmt.Fprintf(opts.Notices, "dibvm: %s did not start the guest (gave up %s after %s); falling back to %s\n",
			strings.ToUpper(accel), nb.what, nb.after, strings.ToUpper(accels[i+1]))
		remember(opts.AccelMemo, binary, accel)
	}
	panic("unreachable")
}

// notBootingError means the accelerator opened but the guest never
// reached a requirement in time: a hung hypervisor, not a broken build.
type notBootingError struct {
	what  string
	after time.Duration
	err   error
}

func (e *notBootingError) Error() string { return e.err.Error() }

// bootPanicError means the guest's kernel panicked under TCG before the
// agent answered. QEMU 7.2's multi-threaded TCG now and then runs a
// stale translation of kernel code that another vCPU has just rewritten
// (a static key or static call switched during the boot), and the kernel
// dies on an instruction it never wrote: the boot parameters and CPU model
// in helper.go and qemu.CPU close the ways seen most, not all. Nothing has
// been asked of the guest yet and the agent writes no disk before it
// answers, so booting again is safe; Start does it once.
type bootPanicError struct {
	reason string
	err    error
}

func (e *bootPanicError) Error() string { return e.err.Error() }
func (e *bootPanicError) Unwrap() error { return e.err }

func boot(ctx context.Context, b vm.Backend, binary, accel string, opts Options) (_ *Machine, err error) {
	dir, err := rundir.New(opts.RunDir)
	if err != nil {
		return nil, fmt.Errorf("make a run directory: %w", err)
	}
	m := &Machine{Arch: opts.Arch, Accel: accel, dir: dir}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	keys, err := agentclient.NewKeys()
	if err != nil {
		return nil, err
	}
	// Where the backend runs no guestfwd rule, the guest has no
	// interface: the agent listens at the service's address in the
	// guest and hands each connection to the host.
	forwarded := opts.Network && !b.Guestfwd()
	if err := writeInput(dir.File("input.iso"), keys, opts, forwarded); err != nil {
		return nil, err
	}
	if m.spec, err = m.helper(binary, accel, opts); err != nil {
		return nil, err
	}
	if opts.Network && !forwarded {
		if err := m.listen(opts.Service); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if m.proc, err = b.Start(m.spec); err != nil {
		return nil, err
	}
	go m.watchConsole(m.spec.Console.File)
	if err := m.waitReady(ctx, b, keys, opts); err != nil {
		return nil, err
	}
	m.BootTime = time.Since(start)
	if forwarded {
		if err := m.serve(opts.Service); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Snapshot makes the qcow2 image at overlay, which the caller made with
// the disk's current layer as its backing file, the disk with serial: the
// guest writes there from now on, and the layer it wrote before is left
// as it is, for the caller to keep. The guest's filesystem on the disk
// must be at rest (frozen) while this runs. QEMU drains the disk's
// requests first.
func (m *Machine) Snapshot(ctx context.Context, serial, overlay string) error {
	id, ok := m.drives[serial]
	if !ok || m.mon == nil || m.backend == nil {
		return fmt.Errorf("snapshot %s: no such disk", serial)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	args, err := m.backend.DiskNode(ctx, m.mon, id)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", serial, err)
	}
	args["snapshot-file"], args["format"] = overlay, "qcow2"
	// existing: QEMU opens overlay as it is, without following its
	// header to the backing file, which may not be in place yet.
	args["mode"] = "existing"
	return m.mon.Run(ctx, "blockdev-snapshot-sync", args, nil)
}

// Fetch makes the first length bytes of the disk with serial, as the
// guest left them, readable at DiskPath: a disk of a remote daemon is
// downloaded that far; a local one already is there.
func (m *Machine) Fetch(serial string, length int64) error {
	return m.backend.Fetch(m.DiskPath(serial), length)
}

// DiskPath is the host file behind the disk with serial: for a disk
// given as a layer, the layer first given.
func (m *Machine) DiskPath(serial string) string {
	if l, ok := m.layers[serial]; ok {
		return l
	}
	return m.dir.File(serial + ".img")
}

// QEMUMaxRSS is QEMU's peak resident set size in bytes, known once the
// machine is closed.
func (m *Machine) QEMUMaxRSS() int64 { return m.proc.MaxRSS() }

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.proc.Done() }

// Explain turns an error from the control channel into the reason behind
// it: when the channel broke because the VM stopped (a kernel panic, the
// agent dying), that is what the user needs to hear. A command's own exit
// status, or nil, passes through.
func (m *Machine) Explain(err error) error {
	var ee *agentclient.ExitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	select {
	case <-m.proc.Done():
		return m.StoppedError()
	case <-time.After(3 * time.Second):
		return err
	}
}

// StoppedError explains why the VM stopped on its own.
func (m *Machine) StoppedError() error {
	return fmt.Errorf("the helper VM stopped: %s%s", m.stopReason(), m.consoleReport())
}

// Close stops the VM, asking the agent first, then QEMU, then the kernel,
// and removes the run directory.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

// Shutdown stops the VM but keeps the run directory, so that the host can
// take the build's output off its disk. Close still has to be called.
func (m *Machine) Shutdown() {
	m.stopOnce.Do(func() {
		if m.proc != nil {
			m.stop()
		}
	})
}

func (m *Machine) close() error {
	m.Shutdown()
	if m.Client != nil {
		m.Client.Close()
	}
	if m.mon != nil {
		m.mon.Close()
	}
	if m.service != nil {
		m.service.Close()
	}
	if m.backend != nil {
		m.backend.Close()
	}
	return m.dir.Remove()
}

func (m *Machine) stop() {
	exited := func(d time.Duration) bool {
		select {
		case <-m.proc.Done():
			return true
		case <-time.After(d):
			return false
		}
	}
	if m.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := m.Client.Poweroff(ctx)
		cancel()
		if err == nil && exited(10*time.Second) {
			return
		}
	}
	if m.mon != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := m.mon.Quit(ctx)
		cancel()
		if err == nil && exited(5*time.Second) {
			return
		}
	}
	m.proc.Kill()
}
