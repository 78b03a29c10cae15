package imageboot

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/vm"
)

// machine is the VM that boots o.Image, which is d, on o's backend;
// what the backend makes for it (libvirt's overlay, firmware variables
// and console socket) goes in tmp.
//
// TCG runs one thread: under multi-threaded TCG a Linux guest that
// patches its own code (jump labels, static calls) now and then panics,
// and an image's kernel command line is not dibvm's to change as the
// helper's is. libvirt has no single-threaded TCG: there a guest under
// TCG runs multi-threaded. The CPU under TCG is the most QEMU emulates,
// so that binaries built for newer x86-64 levels run.
func machine(o Options, d Disk, tmp string) (*vm.Machine, error) {
	binary, err := o.QEMU.FindBinary(o.Arch)
	if err != nil {
		return nil, err
	}
	fw, err := firmware(o, d)
	if err != nil {
		return nil, err
	}
	if UsesProxy(o) && !o.backend().Guestfwd() {
		return nil, ErrLibvirtProxy
	}
	net, err := network(o)
	if err != nil {
		return nil, err
	}
	image, err := filepath.Abs(o.Image)
	if err != nil {
		return nil, err
	}
	m := &vm.Machine{
		Name: o.Image, Binary: binary,
		Arch: o.Arch, Accel: o.Accel, CPUModel: "max", CPUs: o.CPUs, Memory: o.Memory, TCGThread: "single",
		Disks:   []vm.Disk{{Path: image, Format: d.Format, Snapshot: !o.Persist}},
		Network: net,
		Console: console(o, tmp),
		Reboot:  true,
		Dir:     tmp,
	}
	if fw != nil {
		m.UEFI = (*vm.UEFI)(fw)
	}
	return m, nil
}

// Command is the QEMU command line that boots o.Image, which is d, and
// whether it boots by UEFI.
func Command(o Options, d Disk) (binary string, args []string, uefi bool, err error) {
	m, err := machine(o, d, "")
	if err != nil {
		return "", nil, false, err
	}
	return m.Binary, qemu.Args(m), m.UEFI != nil, nil
}

// backend is what runs o's VM.
func (o Options) backend() vm.Backend {
	if o.Backend == nil {
		return qemu.Backend{Host: o.QEMU}
	}
	return o.Backend
}

// throughLibvirt says a libvirt daemon runs o's VM.
func throughLibvirt(o Options) bool {
	_, ok := o.Backend.(*libvirt.Conn)
	return ok
}

// console is where the serial console goes: o.Console, else the
// terminal, which through libvirt is a socket in tmp that dibvm joins
// to it.
func console(o Options, tmp string) vm.Console {
	switch {
	case o.Console != "":
		return vm.Console{File: o.Console}
	case throughLibvirt(o):
		return vm.Console{Socket: consoleSocket(tmp)}
	}
	return vm.Console{Terminal: true}
}

// firmware is the UEFI firmware to boot with, or nil for BIOS. Its
// variable store is the firmware's template, in an overlay: the image
// boots by its fallback loader (DIB's bootloader installs one), and
// nothing of the host's changes.
func firmware(o Options, d Disk) (*qemu.UEFI, error) {
	switch o.Firmware {
	case "", "auto":
		if !d.ESP && o.Arch != "arm64" {
			return nil, nil
		}
	case "uefi":
	case "bios":
		if o.Arch == "arm64" {
			return nil, errors.New("--firmware bios: arm64 machines boot by UEFI only")
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("--firmware %s: give auto, bios or uefi", o.Firmware)
	}
	fw, err := o.QEMU.FindUEFI(o.Arch)
	if err != nil {
		return nil, err
	}
	return &fw, nil
}

// network is the guest's NIC, nil for none.
func network(o Options) (*vm.Network, error) {
	switch o.Network {
	case NetworkProxy, "":
		if o.guestfwd == "" {
			return nil, errors.New("--network proxy: the egress proxy is not running (StartProxy starts it)")
		}
		return &vm.Network{Guestfwd: o.guestfwd, SSHPort: o.SSHPort}, nil
	case NetworkNAT:
		return &vm.Network{SSHPort: o.SSHPort}, nil
	case NetworkRestricted:
		return &vm.Network{Restrict: true, SSHPort: o.SSHPort}, nil
	case NetworkNone:
		if o.SSHPort != 0 {
			return nil, errors.New("--ssh needs a network: leave out --network none, or give --network restricted")
		}
		return nil, nil
	}
	return nil, fmt.Errorf("--network %s: give %s", o.Network, strings.Join(Networks, ", "))
}
