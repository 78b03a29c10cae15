package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/host/vm"
)

// Args is the QEMU command line that runs m, without the binary.
func Args(m *vm.Machine) []string {
	a := []string{"-nodefaults", "-no-user-config", "-display", "none"}
	if !m.Reboot {
		a = append(a, "-no-reboot")
	}
	a = append(a,
		"-machine", Machine(m.Arch),
		"-accel", accelArg(m.Accel, m.TCGThread),
		"-cpu", CPU(m.Arch, m.Accel, m.CPUModel),
		"-m", strconv.Itoa(m.Memory), "-smp", strconv.Itoa(m.CPUs),
	)
	a = append(a, firmwareArgs(m)...)
	if m.Kernel != "" {
		a = append(a, "-kernel", m.Kernel, "-initrd", m.Initrd, "-append", m.Cmdline)
	}
	a = append(a, consoleArgs(m.Console)...)
	if m.Monitor != "" {
		a = append(a, "-chardev", "socket,id=qmp,path="+m.Monitor+",server=on,wait=off", "-mon", "chardev=qmp,mode=control")
	}
	if m.Agent != nil {
		a = append(a,
			"-device", "virtio-serial-pci,id=vser",
			"-chardev", "socket,id=agent,path="+m.Agent.Socket+",server=on,wait=off",
			"-device", "virtserialport,bus=vser.0,chardev=agent,name="+m.Agent.Name,
		)
	}
	for i, d := range m.Disks {
		a = append(a, diskArgs(i, d)...)
	}
	a = append(a, "-device", "virtio-rng-pci")
	return append(a, NetworkArgs(m.Network)...)
}

// accelArg is the accelerator argument, with TCG's threading when
// thread names it.
func accelArg(accel, thread string) string {
	if accel == "tcg" && thread != "" {
		return "tcg,thread=" + thread
	}
	return accel
}

// firmwareArgs replace QEMU's default firmware. UEFI's variable store is
// the firmware's template, in an overlay: nothing of the host's changes.
func firmwareArgs(m *vm.Machine) []string {
	switch {
	case m.UEFI != nil:
		return []string{
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + escape(m.UEFI.Code),
			"-drive", "if=pflash,format=raw,unit=1,snapshot=on,file=" + escape(m.UEFI.Vars),
		}
	case m.BIOS != "":
		return []string{"-bios", m.BIOS}
	}
	return nil
}

// consoleArgs put the first serial port where c says. On the terminal,
// Ctrl-C goes to the guest; Ctrl-a x quits, Ctrl-a c is QEMU's monitor.
func consoleArgs(c vm.Console) []string {
	var dev string
	switch {
	case c.Terminal:
		return []string{"-chardev", "stdio,id=s0,mux=on,signal=off", "-serial", "chardev:s0", "-mon", "chardev=s0"}
	case c.Socket != "":
		dev = "socket,id=s0,path=" + escape(c.Socket) + ",server=on,wait=off"
	case c.File != "":
		dev = "file,id=s0,path=" + escape(c.File)
	default:
		return nil
	}
	return []string{"-chardev", dev, "-serial", "chardev:s0"}
}

// diskArgs attach the i'th disk. One with a serial is named (DiskID),
// for QMP's block commands, and gets the serial through its device; one
// without needs neither and QEMU attaches it itself (if=virtio).
func diskArgs(i int, d vm.Disk) []string {
	drive := "file=" + escape(d.Path)
	if d.Serial == "" {
		drive += ",if=virtio"
	} else {
		drive += ",if=none,id=" + vm.DiskID(i)
	}
	drive += ",format=" + d.DiskFormat()
	if d.Snapshot {
		drive += ",snapshot=on"
	}
	if d.Unsafe {
		drive += ",cache=unsafe"
	}
	if d.ReadOnly {
		drive += ",readonly=on"
	}
	if d.Serial == "" {
		return []string{"-drive", drive}
	}
	return []string{"-drive", drive, "-device", "virtio-blk-pci,drive=" + vm.DiskID(i) + ",serial=" + d.Serial}
}

// NetworkArgs are the arguments of the guest's NIC n, none for no NIC.
// romfile= skips the PXE option ROM: nothing boots from the network.
func NetworkArgs(n *vm.Network) []string {
	if n == nil {
		return nil
	}
	netdev := "user,id=n0"
	if n.Restrict || n.Guestfwd != "" {
		netdev += ",restrict=on"
	}
	if n.Guestfwd != "" {
		netdev += ",guestfwd=" + n.Guestfwd
	}
	if n.SSHPort != 0 {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:22", n.SSHPort)
	}
	return []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile="}
}

// escape writes a comma in an option's value twice, as QEMU reads it.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
