// Package vm is the one description of a virtual machine, the helper's
// or a booted image's, and the interface of the backends that run it.
//
// A Machine says what the guest gets (firmware, kernel or disk, CPU,
// memory, disks, network, console, the agent's channel); a Backend, QEMU
// as dibvm's child (host/qemu) or a libvirt domain (host/libvirt), turns
// it into its own terms and starts it, and hands back an Instance.
package vm

import "strconv"

// Machine describes one virtual machine, whatever runs it.
type Machine struct {
	// Name says what the VM is, in errors: "the helper VM", an image's
	// path.
	Name string
	// Binary is the QEMU system emulator; through libvirt, empty lets
	// the daemon pick its own.
	Binary string
	Arch   string // the guest's, as GOARCH names it: amd64 or arm64
	Accel  string // kvm, hvf or tcg
	// CPUModel is the guest CPU under TCG: "" or "auto" for the one that
	// suits the helper best, else a QEMU -cpu model (see qemu.CPU). A
	// hypervisor always gets the host's.
	CPUModel string
	CPUs     int
	Memory   int // MiB
	// TCGThread is how TCG runs the vCPUs: "multi", "single", or empty
	// for QEMU's own choice.
	TCGThread string

	// BIOS replaces QEMU's default firmware when set (qboot); UEFI, when
	// set, boots by UEFI instead.
	BIOS string
	UEFI *UEFI
	// Kernel, Initrd and Cmdline boot a kernel directly, when Kernel is
	// set.
	Kernel, Initrd, Cmdline string

	Disks []Disk
	// Network is the guest's one NIC, QEMU's user network; nil for none.
	Network *Network
	Console Console
	// Monitor is the unix socket of QEMU's QMP monitor, where dibvm runs
	// QEMU itself (libvirt keeps the monitor: see Backend.Monitor).
	Monitor string
	// Agent is the virtio-serial port the guest's agent serves on, when
	// there is one.
	Agent *Channel
	// Reboot lets the guest's reboot restart it; without it a reboot
	// ends the VM, as a power-off does.
	Reboot bool
	// Dir is a directory of this boot's own, removed after it, where a
	// backend makes what it needs beside the caller's files: libvirt's
	// copy of the UEFI variables (vars.fd) and its overlays for Snapshot
	// disks (overlay.qcow2).
	Dir string
}

// UEFI is a UEFI firmware for QEMU's pflash: the read-only code, and the
// template of the variable store each boot gets its own copy of.
type UEFI struct {
	Code, Vars string
}

// Disk is a disk image attached with virtio-blk.
type Disk struct {
	Path string
	// Serial is what the guest sees in /sys/block/*/serial; empty for
	// none.
	Serial string
	// Format is raw (when empty) or qcow2 (with its backing chain).
	Format   string
	ReadOnly bool
	// Snapshot sends the guest's writes to a throwaway overlay: the file
	// stays as it was.
	Snapshot bool
	// Unsafe lets QEMU ignore the guest's flushes: for disks nobody
	// reads before QEMU has exited.
	Unsafe bool
	// Blank says the file is a new sparse disk with nothing on it yet,
	// which a backend elsewhere need not copy.
	Blank bool
}

// DiskFormat is d's format as QEMU names it.
func (d Disk) DiskFormat() string {
	if d.Format == "" {
		return "raw"
	}
	return d.Format
}

// DiskID is the QEMU id of the i'th disk of a Machine, which QMP's block
// commands name it by.
func DiskID(i int) string { return "disk" + strconv.Itoa(i) }

// Network is QEMU's user network (NAT) for the guest.
type Network struct {
	// Restrict lets nothing out but what Guestfwd leads somewhere.
	Restrict bool
	// Guestfwd, when set, is a forwarding rule from the guest to a host
	// service (see host/egress), and restricts the network to it.
	Guestfwd string
	// SSHPort, when not 0, forwards the host's 127.0.0.1:SSHPort to the
	// guest's port 22.
	SSHPort int
}

// Console is where the guest's first serial port goes: one of a file, a
// unix socket the backend listens on, or dibvm's own terminal (with
// QEMU's monitor behind Ctrl-a c).
type Console struct {
	File     string
	Socket   string
	Terminal bool
}

// Channel is a virtio-serial port: a unix socket on the host that QEMU
// listens on, and the port's name in the guest.
type Channel struct {
	Socket, Name string
}
