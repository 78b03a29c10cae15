package machine

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/agentclient"
	"github.com/dibvm/dibvm/host/iso"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/vm"
)

// helper is the helper VM as a vm.Machine: the appliance's kernel booted
// directly, the input disk and opts' disks, the console and the agent's
// channel in the run directory, under accel. Its blank disks are made
// here. A reboot ends it, and so does a guest panic (see kernelCmdline).
func (m *Machine) helper(binary, accel string, opts Options) (*vm.Machine, error) {
	spec := &vm.Machine{
		Name: "the helper VM", Binary: binary,
		Arch: opts.Arch, Accel: accel, CPUModel: opts.CPUModel, CPUs: opts.CPUs, Memory: opts.Memory,
		BIOS:    opts.QEMU.FindQboot(opts.Arch),
		Kernel:  opts.Appliance.Kernel,
		Initrd:  opts.Appliance.Initrd,
		Cmdline: kernelCmdline(opts.Arch, accel),
		Console: vm.Console{File: m.dir.File("console.log")},
		Monitor: m.dir.File("qmp.sock"),
		Agent:   &vm.Channel{Socket: m.dir.File("agent.sock"), Name: api.PortName},
		Dir:     m.dir.Path,
	}
	if opts.CPUs > 1 {
		spec.TCGThread = "multi"
	}
	spec.Disks = []vm.Disk{{Path: m.dir.File("input.iso"), Serial: api.InputSerial, ReadOnly: true, Unsafe: true}}
	m.drives, m.layers = map[string]string{}, map[string]string{}
	for _, d := range opts.Disks {
		m.drives[d.Serial] = vm.DiskID(len(spec.Disks))
		disk := vm.Disk{Path: d.Source, Serial: d.Serial, Unsafe: true}
		switch {
		case d.Source != "":
			disk.ReadOnly = true
		case d.Layer != "":
			disk.Path, disk.Format = d.Layer, "qcow2"
			m.layers[d.Serial] = d.Layer
		default:
			disk.Path, disk.Blank = m.dir.File(d.Serial+".img"), true
			if err := makeSparse(disk.Path, d.Size); err != nil {
				return nil, err
			}
		}
		spec.Disks = append(spec.Disks, disk)
	}
	return spec, nil
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
		cfg.Network = &api.Network{Forwarded: true, Proxy: "http://" + opts.Service.Addr()}
	case opts.Network:
		// QEMU's user networking always serves this network.
		cfg.Network = &api.Network{Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.3",
			Proxy: "http://" + opts.Service.Addr()}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	files := append([]iso.File{{Name: api.ConfigFile, Data: b}}, opts.Inputs...)
	return iso.Write(path, files)
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
