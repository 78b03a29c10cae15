// Package machine boots the helper VM and hands back a connected control
// channel: it writes the input disk, starts QEMU, picks an accelerator
// that really runs the guest (falling back to TCG when a hypervisor opens
// but never boots), and stops everything again without leaving a trace.
package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/debootstrap"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/qmp"
	"github.com/dibvm/dibvm/host/rundir"
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
	Accel      string // auto, kvm, hvf or tcg
	Memory     int    // MiB
	CPUs       int
	// CPUModel is the guest CPU under TCG (see qemu.Config.CPUModel).
	CPUModel  string
	Network   bool
	Appliance *vmimage.Appliance
	Inputs    []iso.File // extra files for the input disk
	// DownloadCache, when set, is a directory where the egress proxy
	// keeps downloads that never change, across runs.
	DownloadCache string
	// Signed are sources whose files the proxy checks against signed
	// sums before it keeps them in DownloadCache; Offline serves them
	// from there alone (see egress.SignedSource).
	Signed  []egress.SignedSource
	Offline bool
	// Egress is what the egress proxy lets the guest reach besides the
	// public network (--allow-net), or all it lets it reach
	// (--allow-only); refusals are reported on Notices.
	Egress egress.Policy
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

	backend backend
	proc    vm
	mon     *qmp.Monitor
	drives  map[string]string // serial → QEMU drive id
	layers  map[string]string // serial → the caller's qcow2 layer
	dir     *rundir.Dir
	egress  *egress.Proxy

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
	b, err := newBackend(opts)
	if err != nil {
		return nil, err
	}
	// The emulator is the host's own unless the VM runs elsewhere, where
	// the daemon picks its own (and the memo, keyed by it, is not kept).
	binary := ""
	if b.local() {
		if binary, err = qemu.FindBinary(opts.Arch); err != nil {
			b.close()
			return nil, err
		}
	} else {
		opts.AccelMemo = ""
	}
	accels, err := b.accelerators(opts.Accel, opts.Arch)
	if err != nil {
		b.close()
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
		if err == nil {
			m.backend = b
			return m, nil
		}
		var nb *notBootingError
		if i == len(accels)-1 || !errors.As(err, &nb) {
			b.close()
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

func boot(ctx context.Context, b backend, binary, accel string, opts Options) (_ *Machine, err error) {
	dir, err := rundir.New()
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
	forwarded := opts.Network && b.forwardsEgress()
	if err := writeInput(dir.File("input.iso"), keys, opts, forwarded); err != nil {
		return nil, err
	}
	drives := []qemu.Drive{{Path: dir.File("input.iso"), Serial: api.InputSerial, ReadOnly: true}}
	m.drives, m.layers = map[string]string{}, map[string]string{}
	for _, d := range opts.Disks {
		m.drives[d.Serial] = qemu.DriveID(len(drives))
		switch {
		case d.Source != "":
			drives = append(drives, qemu.Drive{Path: d.Source, Serial: d.Serial, ReadOnly: true})
			continue
		case d.Layer != "":
			drives = append(drives, qemu.Drive{Path: d.Layer, Serial: d.Serial, QCOW2: true})
			m.layers[d.Serial] = d.Layer
			continue
		}
		p := dir.File(d.Serial + ".img")
		if err := makeSparse(p, d.Size); err != nil {
			return nil, err
		}
		drives = append(drives, qemu.Drive{Path: p, Serial: d.Serial, Blank: true})
	}
	cfg := &qemu.Config{
		Binary: binary, Arch: opts.Arch, Accel: accel, Memory: opts.Memory, CPUs: opts.CPUs, CPUModel: opts.CPUModel,
		Firmware: qemu.FindQboot(opts.Arch),
		Kernel:   opts.Appliance.Kernel, Initrd: opts.Appliance.Initrd,
		Cmdline: kernelCmdline(opts.Arch, accel),
		Drives:  drives,
		Network: opts.Network && !forwarded,

		ConsoleLog:  dir.File("console.log"),
		QMPSocket:   dir.File("qmp.sock"),
		AgentSocket: dir.File("agent.sock"),
		AgentPort:   api.PortName,
	}
	if cfg.Network {
		if m.egress, cfg.Guestfwd, err = startEgress(dir, opts); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if m.proc, err = b.start(cfg); err != nil {
		return nil, err
	}
	go m.watchConsole(cfg.ConsoleLog)
	if err := m.waitReady(ctx, b, cfg, accel, keys, opts); err != nil {
		return nil, err
	}
	m.BootTime = time.Since(start)
	if forwarded {
		// The guest has no interface: the agent listens at the proxy's
		// address in the guest and hands each connection to the host.
		ln, err := m.Client.Listen(egress.GuestAddr)
		if err != nil {
			return nil, err
		}
		if m.egress, err = egress.Serve(ln, proxyOptions(dir, opts)); err != nil {
			ln.Close()
			return nil, fmt.Errorf("start the egress proxy: %w", err)
		}
	}
	return m, nil
}

// kernelCmdline is the appliance kernel's command line. Under TCG the TSC
// is declared unstable from the start: otherwise the kernel marks
// sched_clock stable about three seconds into boot and live-patches
// sched_clock_cpu while the other vCPU may be running it, and QEMU's
// multi-threaded TCG now and then lets that CPU trap on the patch's int3
// after the patch is done, which panics the guest ("Fatal exception in
// interrupt" at sched_clock_cpu). An unstable TSC leaves that code alone.
// (arm64 has no TSC.) nohz=off does the same for the timer wheel's static
// branches, which the kernel otherwise switches a second into the boot,
// when the tick first stops on an idle CPU (a panic in
// run_timer_softirq); an idle vCPU then takes every tick, which costs
// nothing measurable. norandmaps, also under TCG only, turns off address
// space randomization: QEMU 7.2 keys an x86 or arm64 translation block by
// its virtual address, so a shared library mapped somewhere new in every
// process is translated anew in every process. With the same addresses
// each time, a fork and exec of /bin/true takes 4.4 ms instead of 25 ms,
// and every hook, maintainer script and dpkg run gains. Nothing in the
// helper relies on randomization: hooks already run there as root, and
// the sandbox is the VM. quiet keeps the boot messages in the kernel's log
// and off the emulated serial port, and cryptomgr.notests skips the
// self-tests of every crypto algorithm the kernel registers; together
// they took 0.3 s of a 5.9 s boot under TCG.
func kernelCmdline(goarch, accel string) string {
	c := "console=" + qemu.ConsoleDevice(goarch) + " panic=-1 oops=panic mitigations=off random.trust_cpu=on quiet cryptomgr.notests=1"
	if accel == "tcg" {
		c += " nohz=off norandmaps"
		if goarch == "amd64" {
			c += " tsc=unstable"
		}
	}
	return c
}

func writeInput(path string, keys *agentclient.Keys, opts Options, forwarded bool) error {
	cfg := api.Config{AuthorizedKey: keys.AuthorizedKey(), HostKey: keys.GuestPrivateKey()}
	switch {
	case forwarded:
		cfg.Network = &api.Network{Forwarded: true, Proxy: "http://" + egress.GuestAddr}
	case opts.Network:
		// QEMU's user networking always serves this network.
		cfg.Network = &api.Network{Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.3",
			Proxy: "http://" + egress.GuestAddr}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	files := append([]iso.File{{Name: api.ConfigFile, Data: b}}, opts.Inputs...)
	return iso.Write(path, files)
}

// startEgress starts the proxy that is the guest's only way out, with
// the cache and policy of opts, and returns the QEMU forwarding rule that
// leads to it.
func startEgress(dir *rundir.Dir, opts Options) (*egress.Proxy, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	sock := dir.File("egress.sock")
	p, err := egress.Listen(sock, proxyOptions(dir, opts))
	if err != nil {
		return nil, "", fmt.Errorf("start the egress proxy: %w", err)
	}
	return p, egress.GuestfwdRule(self, sock), nil
}

// proxyOptions are the egress proxy's cache, policy and services as opts
// say.
func proxyOptions(dir *rundir.Dir, opts Options) egress.Options {
	var cache *egress.Cache
	if opts.DownloadCache != "" {
		cache = &egress.Cache{Dir: opts.DownloadCache}
	}
	return egress.Options{Cache: cache, Policy: opts.Egress, Notices: opts.Notices, Signed: opts.Signed, Offline: opts.Offline,
		Services: map[string]egress.Service{api.ServiceHost: debootstrap.Service(dir.Path)}}
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
	args, err := m.backend.disk(ctx, m.mon, id)
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
	return m.backend.fetch(m.DiskPath(serial), length)
}

// DiskPath is the host file behind the disk with serial: for a disk
// given as a layer, the layer first given.
func (m *Machine) DiskPath(serial string) string {
	if l, ok := m.layers[serial]; ok {
		return l
	}
	return m.dir.File(serial + ".img")
}

func makeSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("make a %d-byte disk: %w", size, err)
	}
	return f.Close()
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
	return fmt.Errorf("the helper VM stopped: %s%s", m.stopReason(), m.consoleTail())
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
	if m.egress != nil {
		m.egress.Close()
	}
	if m.backend != nil {
		m.backend.close()
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
