// Package imageboot boots a built image the way people try one: it
// reads the image's format and partition table, describes the VM it
// needs (UEFI when it has an EFI system partition, its writes in a
// throwaway overlay unless asked otherwise, its serial console on the
// terminal or in a file, its SSH port forwarded to the host's loopback,
// the egress proxy as its way out) and starts it on a vm.Backend: QEMU
// as dibvm's child, or a transient domain of the user's libvirt.
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
	"strings"

	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/egress"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/vm"
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
	// dibvm's own stdin and stdout, with QEMU's monitor behind Ctrl-a c
	// (through libvirt, on a socket dibvm joins to them: see Console).
	Console string
	// Backend runs the VM: QEMU as dibvm's child when nil, or a
	// *libvirt.Conn, whose transient domain it is then (see libvirt.go).
	Backend vm.Backend
	// QEMU is this host's QEMU, whose emulator and firmware boot the
	// image on either backend.
	QEMU qemu.Host

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
