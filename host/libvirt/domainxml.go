package libvirt

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"

	"libvirt.org/go/libvirtxml"

	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/vm"
)

// A vm.Machine becomes a domain in libvirt's words where libvirt has
// them, and in QEMU's own where it has not: QEMU's user network with
// restrict=on and a host forward (only passt's, not installed
// everywhere, forwards ports) is QEMU's arguments passed through, which
// virsh shows as tainting the domain (custom-argv). A Network's Guestfwd
// cannot run there (Guestfwd: libvirt's QEMU may not start processes),
// and libvirt has no single-threaded TCG.

// DomainXML is the domain for m, named name (see domain).
func DomainXML(m *vm.Machine, name string) (string, error) {
	d, err := domain(m, name)
	if err != nil {
		return "", err
	}
	return d.Marshal()
}

// domain is the domain for m, named name. For m's Snapshot disks it
// makes their overlays in m.Dir first, as QEMU's snapshot=on would.
func domain(m *vm.Machine, name string) (*libvirtxml.Domain, error) {
	if m.Network != nil && m.Network.Guestfwd != "" {
		return nil, fmt.Errorf("%s: libvirt runs QEMU in a sandbox that cannot start a guestfwd rule's command", m.Name)
	}
	d := &libvirtxml.Domain{
		Type:   DomainType(m.Accel),
		Name:   name,
		Memory: &libvirtxml.DomainMemory{Value: uint(m.Memory), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: uint(m.CPUs)},
		OS: &libvirtxml.DomainOS{
			Type:   &libvirtxml.DomainOSType{Type: "hvm", Arch: Arch(m.Arch), Machine: qemu.Machine(m.Arch)},
			Kernel: m.Kernel, Initrd: m.Initrd, Cmdline: m.Cmdline,
		},
		CPU: CPU(qemu.CPU(m.Arch, m.Accel, m.CPUModel)),
		// Power-off and crash end the domain, as they end QEMU; a reboot
		// too unless m says otherwise (QEMU's -no-reboot).
		OnPoweroff: "destroy", OnReboot: "destroy", OnCrash: "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Emulator: m.Binary,
			Serials:  []libvirtxml.DomainSerial{{Source: consoleSource(m.Console)}},
			RNGs: []libvirtxml.DomainRNG{{
				Model:   "virtio",
				Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
			}},
			// What QEMU's -nodefaults leaves out: no balloon, no USB.
			MemBalloon:  &libvirtxml.DomainMemBalloon{Model: "none"},
			Controllers: []libvirtxml.DomainController{{Type: "usb", Model: "none"}},
		},
	}
	if m.Reboot {
		d.OnReboot = "restart"
	}
	if m.Arch == "amd64" || m.UEFI != nil {
		// Without ACPI (libvirt's default) an x86 guest's power-off only
		// halts it; UEFI describes the machine by ACPI. An arm64 guest
		// booted directly powers off through PSCI.
		d.Features = &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}}
	}
	setFirmware(d, m)
	if m.Agent != nil {
		d.Devices.Channels = []libvirtxml.DomainChannel{{
			Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind", Path: m.Agent.Socket}},
			Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: m.Agent.Name}},
		}}
	}
	if err := addDisks(d, m); err != nil {
		return nil, err
	}
	d.QEMUCommandline = networkPassthrough(m.Network)
	return d, nil
}

// consoleSource is where the serial console goes: a file, or a unix
// socket the daemon's QEMU listens on.
func consoleSource(c vm.Console) *libvirtxml.DomainChardevSource {
	if c.Socket != "" {
		return &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind", Path: c.Socket}}
	}
	return &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: c.File}}
}

// setFirmware sets m's firmware: a ROM in place of the BIOS, or UEFI's
// code as a read-only pflash loader with its variable store's template,
// which libvirt copies into m.Dir (gone with the boot, as QEMU's overlay
// on it).
func setFirmware(d *libvirtxml.Domain, m *vm.Machine) {
	switch {
	case m.UEFI != nil:
		d.OS.Loader = &libvirtxml.DomainLoader{Path: m.UEFI.Code, Readonly: "yes", Type: "pflash"}
		d.OS.NVRam = &libvirtxml.DomainNVRam{NVRam: filepath.Join(m.Dir, "vars.fd"), Template: m.UEFI.Vars}
	case m.BIOS != "":
		d.OS.Loader = &libvirtxml.DomainLoader{Path: m.BIOS, Type: "rom", Readonly: "yes"}
	}
}

// addDisks adds m's disks, each with a user alias (ua-), which is the
// device's id in QEMU and names the disk for QMP. A Snapshot disk is a
// qcow2 overlay made in m.Dir, with the file as its backing store.
func addDisks(d *libvirtxml.Domain, m *vm.Machine) error {
	overlays := 0
	for i, dr := range m.Disks {
		disk := libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: dr.DiskFormat()},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: dr.Path}},
			Target: &libvirtxml.DomainDiskTarget{Dev: "vd" + string(rune('a'+i)), Bus: "virtio"},
			Serial: dr.Serial,
			Alias:  &libvirtxml.DomainAlias{Name: DeviceAlias(vm.DiskID(i))},
		}
		if dr.Unsafe {
			disk.Driver.Cache = "unsafe"
		}
		if dr.ReadOnly {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		if dr.Snapshot {
			if err := overlay(&disk, dr, filepath.Join(m.Dir, overlayName(overlays))); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			overlays++
		}
		d.Devices.Disks = append(d.Devices.Disks, disk)
	}
	return nil
}

// overlayName is the file of the n'th Snapshot disk's overlay.
func overlayName(n int) string {
	if n == 0 {
		return "overlay.qcow2"
	}
	return "overlay-" + strconv.Itoa(n) + ".qcow2"
}

// overlay makes a qcow2 overlay at path on dr's file and points disk at
// it.
func overlay(disk *libvirtxml.DomainDisk, dr vm.Disk, path string) error {
	file, err := filepath.Abs(dr.Path)
	if err != nil {
		return err
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", file, "-F", dr.DiskFormat(), path).CombinedOutput(); err != nil {
		return fmt.Errorf("make the overlay its writes go to: %v: %s", err, bytes.TrimSpace(out))
	}
	disk.Driver.Type = "qcow2"
	disk.Source.File.File = path
	disk.BackingStore = &libvirtxml.DomainDiskBackingStore{
		Format: &libvirtxml.DomainDiskFormat{Type: dr.DiskFormat()},
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: file}},
		// The file has no backing file of its own (the caller makes
		// sure): libvirt need not look.
		BackingStore: &libvirtxml.DomainDiskBackingStore{},
	}
	return nil
}

// networkPassthrough is n as QEMU's own arguments. QEMU sees them before
// libvirt's devices, each of which has its PCI slot from libvirt,
// counted from 2: the NIC takes one near the end of the bus instead of
// the first free one.
func networkPassthrough(n *vm.Network) *libvirtxml.DomainQEMUCommandline {
	args := qemu.NetworkArgs(n)
	if len(args) == 0 {
		return nil
	}
	args[len(args)-1] += ",addr=0x1e"
	cl := &libvirtxml.DomainQEMUCommandline{}
	for _, a := range args {
		cl.Args = append(cl.Args, libvirtxml.DomainQEMUCommandlineArg{Value: a})
	}
	return cl
}
