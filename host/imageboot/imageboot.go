// Package imageboot boots a built image under QEMU the way people try
// one: on the machine and firmware it needs (UEFI when it has an EFI
// system partition), its writes kept in a throwaway overlay unless asked
// otherwise, its serial console on the terminal or in a file, and its
// SSH port forwarded to the host's loopback. QEMU is dibvm's own, or a
// transient domain of the user's libvirt.
package imageboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
)

// Options are how to boot an image.
type Options struct {
	Image  string
	Arch   string // the image's, as GOARCH names it
	Accel  string // kvm, hvf or tcg
	Memory int    // MiB
	CPUs   int
	// Persist writes to the image itself; otherwise its writes go to an
	// overlay that QEMU throws away.
	Persist bool
	// Firmware is auto (UEFI when the image has an EFI system partition,
	// and always for arm64), bios or uefi.
	Firmware string
	// Network is one of Networks; empty is NetworkProxy.
	Network string
	// Egress is what the egress proxy of NetworkProxy lets the guest
	// reach, as for a build (--allow-net, --allow-only); Notices gets
	// its refusals.
	Egress  egress.Policy
	Notices io.Writer
	// SSHPort, when not 0, forwards the host's 127.0.0.1:SSHPort to the
	// guest's port 22.
	SSHPort int
	// Console is a file to write the serial console to; empty puts it on
	// dibvm's own stdin and stdout, with QEMU's monitor behind Ctrl-a c.
	Console string
	// Libvirt, when set, runs the VM as a transient domain of this
	// daemon's (see libvirt.go) rather than as QEMU dibvm starts.
	Libvirt *libvirt.Conn

	// guestfwd is the rule that leads the guest's connections to
	// egress.GuestAddr to the proxy StartProxy started.
	guestfwd string
}

// Disk is what qemu-img says of an image, and whether it has an EFI
// system partition.
type Disk struct {
	Format string
	Size   int64
	ESP    bool
}

// The values of Options.Network: what a booted image may reach, and
// what reaches it.
//
// An image built from elements dibvm does not trust is no more trusted
// booted than it was in the helper VM, so by default it reaches the
// outside only as a build's guest does: through dibvm's egress proxy, at
// the same address (egress.GuestAddr, 10.0.2.100:3128), under the same
// policy (--allow-net, --allow-only), with the netdev restrict=on so
// that nothing else leaves. QEMU's full user network would hand the
// guest's connections to 10.0.2.2 to the host's loopback services; it
// is there, as nat, only when asked for by name.
const (
	// NetworkProxy: the egress proxy alone, and the SSH port in.
	NetworkProxy = "proxy"
	// NetworkNAT: QEMU's user network, open: whatever the host reaches,
	// the host's own loopback as 10.0.2.2 included.
	NetworkNAT = "nat"
	// NetworkRestricted: nothing out; only the SSH port in.
	NetworkRestricted = "restricted"
	// NetworkNone: no NIC.
	NetworkNone = "none"
)

// Networks are the values of Options.Network.
var Networks = []string{NetworkProxy, NetworkNAT, NetworkRestricted, NetworkNone}

// formats are the image formats dibvm writes, as qemu-img names them.
var formats = diskformat.QemuImgNames()

// Inspect asks qemu-img for the image's format and size, and reads its
// partition table for an EFI system partition. It refuses an image that
// names other files for QEMU to open (a backing file, a qcow2 external
// data file, a VMDK's extents elsewhere): its content is the guest's,
// and those files would be the host's.
func Inspect(ctx context.Context, image string) (Disk, error) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return Disk{}, errors.New("qemu-img not found: it comes with QEMU (Debian and Ubuntu: apt-get install qemu-utils)")
	}
	args := []string{"info", "--output=json"}
	// An image named as dibvm names its outputs is read as that format:
	// qemu-img guesses nothing from bytes the build's guest wrote.
	if f, ok := diskformat.OfFile(image); ok {
		args = append(args, "-f", f)
	}
	out, err := exec.CommandContext(ctx, qemuImg, append(args, image)...).Output()
	var info struct {
		Format         string `json:"format"`
		VirtualSize    int64  `json:"virtual-size"`
		Backing        string `json:"backing-filename"`
		FormatSpecific struct {
			Data struct {
				DataFile   string `json:"data-file"`
				CreateType string `json:"create-type"`
				Extents    []struct {
					Filename string `json:"filename"`
				} `json:"extents"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err != nil || json.Unmarshal(out, &info) != nil {
		return Disk{}, fmt.Errorf("%s: qemu-img cannot read it as a disk image: %v", image, stderrOf(err))
	}
	if !slices.Contains(formats, info.Format) {
		return Disk{}, fmt.Errorf("%s: a %s image; dibvm boots %s", image, info.Format, strings.Join(formats, ", "))
	}
	data := info.FormatSpecific.Data
	switch {
	case info.Backing != "":
		return Disk{}, fmt.Errorf("%s: it is an overlay on %s; boot that image, or one made with qemu-img convert", image, info.Backing)
	case data.DataFile != "":
		return Disk{}, fmt.Errorf("%s: its data is in another file, %s; dibvm boots only images whole in one file (qemu-img convert makes one)", image, data.DataFile)
	case info.Format == "vmdk" && data.CreateType != "monolithicSparse" && data.CreateType != "streamOptimized":
		return Disk{}, fmt.Errorf("%s: a %s VMDK, whose extents are other files; dibvm boots only VMDKs whole in one file (qemu-img convert makes one)", image, data.CreateType)
	}
	d := Disk{Format: info.Format, Size: info.VirtualSize}
	head, err := readHead(ctx, qemuImg, image, info.Format)
	if err != nil {
		return Disk{}, err
	}
	d.ESP = hasESP(head)
	return d, nil
}

// readHead is the first MiB of the disk, as the guest sees it.
func readHead(ctx context.Context, qemuImg, image, format string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "dibvm-boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "head")
	if b, err := exec.CommandContext(ctx, qemuImg, "dd", "-f", format, "-O", "raw", "bs=1M", "count=1",
		"if="+image, "of="+out).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: read its partition table: %v: %s", image, err, strings.TrimSpace(string(b)))
	}
	return os.ReadFile(out)
}

// Command is the QEMU command line that boots o.Image, which is d.
func Command(o Options, d Disk) (binary string, args []string, uefi bool, err error) {
	binary, err = qemu.FindBinary(o.Arch)
	if err != nil {
		return "", nil, false, err
	}
	fw, err := firmware(o, d)
	if err != nil {
		return "", nil, false, err
	}
	net, err := network(o)
	if err != nil {
		return "", nil, false, err
	}
	args = []string{"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", qemu.Machine(o.Arch), "-accel", accel(o.Accel),
		"-cpu", cpu(o), "-m", strconv.Itoa(o.Memory), "-smp", strconv.Itoa(o.CPUs)}
	if fw != nil {
		// The variable store is the firmware's template, in an overlay:
		// the image boots by its fallback loader (DIB's bootloader
		// installs one), and nothing of the host's changes.
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(fw.Code),
			"-drive", "if=pflash,format=raw,unit=1,snapshot=on,file="+escape(fw.Vars))
	}
	drive := "file=" + escape(o.Image) + ",if=virtio,format=" + d.Format
	if !o.Persist {
		drive += ",snapshot=on"
	}
	args = append(args, "-drive", drive, "-device", "virtio-rng-pci")
	args = append(args, net...)
	if o.Console == "" {
		// Ctrl-C goes to the guest; Ctrl-a x quits, Ctrl-a c is QEMU's
		// monitor.
		args = append(args, "-chardev", "stdio,id=s0,mux=on,signal=off", "-serial", "chardev:s0", "-mon", "chardev=s0")
	} else {
		args = append(args, "-chardev", "file,id=s0,path="+escape(o.Console), "-serial", "chardev:s0")
	}
	return binary, args, fw != nil, nil
}

// cpu is the guest CPU: under TCG the most QEMU emulates, so that
// binaries built for newer x86-64 levels run.
func cpu(o Options) string { return qemu.CPU(o.Arch, o.Accel, "max") }

// firmware is the UEFI firmware to boot with, or nil for BIOS.
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
	fw, err := qemu.FindUEFI(o.Arch)
	if err != nil {
		return nil, err
	}
	return &fw, nil
}

// network is the QEMU arguments of the guest's NIC, none for no NIC.
func network(o Options) ([]string, error) {
	switch o.Network {
	case NetworkProxy, NetworkNAT, NetworkRestricted, "":
		netdev := "user,id=n0"
		switch o.Network {
		case NetworkProxy, "":
			if o.guestfwd == "" {
				return nil, errors.New("--network proxy: the egress proxy is not running (StartProxy starts it)")
			}
			netdev += ",restrict=on,guestfwd=" + o.guestfwd
		case NetworkRestricted:
			netdev += ",restrict=on"
		}
		if o.SSHPort != 0 {
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:22", o.SSHPort)
		}
		return []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile="}, nil
	case NetworkNone:
		if o.SSHPort != 0 {
			return nil, errors.New("--ssh needs a network: leave out --network none, or give --network restricted")
		}
		return nil, nil
	}
	return nil, fmt.Errorf("--network %s: give %s", o.Network, strings.Join(Networks, ", "))
}

// accel is the accelerator argument. TCG runs one thread: under
// multi-threaded TCG a Linux guest that patches its own code (jump
// labels, static calls) now and then panics, and an image's kernel
// command line is not dibvm's to change as the helper's is.
func accel(a string) string {
	if a == "tcg" {
		return "tcg,thread=single"
	}
	return a
}

// escape writes a comma in an option's value twice, as QEMU reads it.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return strings.TrimSpace(string(ee.Stderr))
	}
	if err == nil {
		return "no answer"
	}
	return err.Error()
}
