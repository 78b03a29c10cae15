package imageboot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
)

// Through libvirt the image boots as a transient domain that goes when
// dibvm's connection does, on the same machine, firmware and disk as
// under dibvm's own QEMU, and the same network but for NetworkProxy,
// which libvirt cannot run (see ErrLibvirtProxy). Two things libvirt has
// no words for: QEMU's user network with restrict=on and a host forward (only
// passt's, not installed everywhere, forwards ports), so the NIC is
// QEMU's own arguments passed through (virsh shows the domain tainted
// by custom-argv); and single-threaded TCG, so a guest under TCG runs
// multi-threaded there (see accel).

// Escape is the key that ends a console through libvirt, Ctrl-], as in
// virsh console.
const Escape = 0x1d

// startDomain boots o.Image, which is d, as a domain of o.Libvirt; its
// overlay, firmware variables and console socket are made in tmp.
func startDomain(o Options, d Disk, tmp string) (*libvirt.Domain, error) {
	dom, err := domain(o, d, tmp)
	if err != nil {
		return nil, err
	}
	return o.Libvirt.Create(dom, o.Image)
}

// consoleSocket is the serial console's socket in tmp, when the console
// is not a file.
func consoleSocket(tmp string) string { return filepath.Join(tmp, "console.sock") }

// domain is the domain that boots o.Image, which is d. Without Persist
// its writes go to a qcow2 overlay in tmp, as QEMU's snapshot=on does.
func domain(o Options, d Disk, tmp string) (*libvirtxml.Domain, error) {
	binary, err := qemu.FindBinary(o.Arch)
	if err != nil {
		return nil, err
	}
	fw, err := firmware(o, d)
	if err != nil {
		return nil, err
	}
	if UsesProxy(o) {
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
	disk := libvirtxml.DomainDisk{
		Device: "disk",
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: d.Format},
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: image}},
		Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
	}
	if !o.Persist {
		overlay := filepath.Join(tmp, "overlay.qcow2")
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", image, "-F", d.Format, overlay).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: make the overlay its writes go to: %v: %s", o.Image, err, bytes.TrimSpace(out))
		}
		disk.Driver.Type = "qcow2"
		disk.Source.File.File = overlay
		disk.BackingStore = &libvirtxml.DomainDiskBackingStore{
			Format: &libvirtxml.DomainDiskFormat{Type: d.Format},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: image}},
			// The image has no backing file (Inspect refuses one):
			// libvirt need not look.
			BackingStore: &libvirtxml.DomainDiskBackingStore{},
		}
	}
	serial := &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: o.Console}}
	if o.Console == "" {
		serial = &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind", Path: consoleSocket(tmp)}}
	}
	dom := &libvirtxml.Domain{
		Type:   libvirt.DomainType(o.Accel),
		Memory: &libvirtxml.DomainMemory{Value: uint(o.Memory), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: uint(o.CPUs)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Type: "hvm", Arch: libvirt.Arch(o.Arch), Machine: qemu.Machine(o.Arch)},
		},
		// Power-off ends the boot, as it ends QEMU; a reboot reboots.
		OnPoweroff: "destroy", OnReboot: "restart", OnCrash: "destroy",
		// amd64 powers off through ACPI; arm64 boots UEFI, which
		// describes the machine by ACPI.
		Features: &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		CPU:      libvirt.CPU(cpu(o)),
		Devices: &libvirtxml.DomainDeviceList{
			Emulator: binary,
			Disks:    []libvirtxml.DomainDisk{disk},
			Serials:  []libvirtxml.DomainSerial{{Source: serial}},
			RNGs: []libvirtxml.DomainRNG{{
				Model:   "virtio",
				Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
			}},
			MemBalloon:  &libvirtxml.DomainMemBalloon{Model: "none"},
			Controllers: []libvirtxml.DomainController{{Type: "usb", Model: "none"}},
		},
	}
	if fw != nil {
		// libvirt copies the variable store's template into tmp, which
		// goes with the boot, as the QEMU backend's overlay does.
		dom.OS.Loader = &libvirtxml.DomainLoader{Path: fw.Code, Readonly: "yes", Type: "pflash"}
		dom.OS.NVRam = &libvirtxml.DomainNVRam{NVRam: filepath.Join(tmp, "vars.fd"), Template: fw.Vars}
	}
	if len(net) > 0 {
		// QEMU sees these before libvirt's devices, each of which has
		// its PCI slot from libvirt, counted from 2: the NIC takes one
		// near the end of the bus instead of the first free one.
		net[len(net)-1] += ",addr=0x1e"
		cl := &libvirtxml.DomainQEMUCommandline{}
		for _, a := range net {
			cl.Args = append(cl.Args, libvirtxml.DomainQEMUCommandlineArg{Value: a})
		}
		dom.QEMUCommandline = cl
	}
	return dom, nil
}

// Console boots o.Image, which is d, as a domain of o.Libvirt, and joins
// its serial console to in and out until the VM stops or in gives Escape;
// then the domain goes. in should be a terminal in raw mode, so that
// keys such as Ctrl-C reach the guest.
//
// The console passes raw, as a VM's console does under QEMU's own stdio
// (see bootHere in host/cli): the user asked for the image's console, a
// terminal session with the guest, which needs the terminal's sequences
// (its login, an editor). Everything dibvm itself shows of the guest
// (the console's end when no login comes) goes through termsafe.
func Console(ctx context.Context, o Options, d Disk, in io.Reader, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "dibvm-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o.Console = ""
	dom, err := startDomain(o, d, tmp)
	if err != nil {
		return err
	}
	defer dom.Kill()
	// QEMU listens before it runs the guest, and libvirt starts the
	// guest before it returns.
	c, err := net.Dial("unix", consoleSocket(tmp))
	if err != nil {
		return fmt.Errorf("%s: its console: %w", dom.Name, err)
	}
	defer c.Close()
	copied := make(chan struct{})
	go func() {
		io.Copy(out, c)
		close(copied)
	}()
	// The reader is left in its Read when the console ends otherwise:
	// dibvm exits then.
	escaped := make(chan struct{})
	go func() {
		b := make([]byte, 1024)
		for {
			n, err := in.Read(b)
			head, _, found := bytes.Cut(b[:n], []byte{Escape})
			if _, werr := c.Write(head); werr != nil {
				return
			}
			if found {
				close(escaped)
				return
			}
			if err != nil {
				// No more input (dibvm run from a script, its stdin
				// closed): the guest runs on, as under QEMU.
				return
			}
		}
	}()
	var result error
	select {
	case <-dom.Done():
		if err := dom.ExitError(); err != nil {
			result = fmt.Errorf("%s: %w", dom.Name, err)
		}
	case <-escaped:
	case <-ctx.Done():
		result = ctx.Err()
	}
	// What the guest wrote last is out before the terminal is the
	// user's again.
	dom.Kill()
	c.Close()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	return result
}

// CheckURI says why the libvirt daemon at uri cannot boot an image.
func CheckURI(uri string) error {
	if libvirt.IsRemote(uri) {
		return fmt.Errorf("--connect %s: dibvm boots an image on a libvirt daemon on this host only: copy the image to that host and boot it there", uri)
	}
	return libvirt.CheckURI(uri)
}
