package libvirt

import (
	"os"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/vm"
)

func TestDomainXML(t *testing.T) {
	// The helper through libvirt: no Network, for the guest reaches the
	// host's service over the agent (see host/machine).
	cfg := &vm.Machine{
		Binary: "/usr/bin/qemu-system-x86_64", Arch: "amd64", Accel: "tcg", Memory: 2048, CPUs: 2,
		BIOS:   "/usr/share/qemu/qboot.rom",
		Kernel: "/c/vmlinuz", Initrd: "/c/initrd.img", Cmdline: "console=ttyS0 quiet",
		Disks: []vm.Disk{
			{Path: "/r/input.iso", Serial: "dibvm-input", ReadOnly: true, Unsafe: true},
			{Path: "/r/scratch,1.img", Serial: "dibvm-scratch", Format: "qcow2", Unsafe: true},
		},
		Console: vm.Console{File: "/r/console.log"}, Monitor: "/r/qmp.sock",
		Agent: &vm.Channel{Socket: "/r/agent.sock", Name: "org.dibvm.agent.0"},
	}
	s, err := DomainXML(cfg, "dibvm-test")
	if err != nil {
		t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(s); err != nil {
		t.Fatal(err)
	}
	if d.Type != "qemu" || d.Name != "dibvm-test" || d.Memory.Value != 2048 || d.Memory.Unit != "MiB" || d.VCPU.Value != 2 {
		t.Errorf("type %s, name %s, memory %d %s, vcpus %d", d.Type, d.Name, d.Memory.Value, d.Memory.Unit, d.VCPU.Value)
	}
	if d.OS.Kernel != cfg.Kernel || d.OS.Initrd != cfg.Initrd || d.OS.Cmdline != cfg.Cmdline || d.OS.Type.Machine != "pc" || d.OS.Loader.Path != cfg.BIOS {
		t.Errorf("os: %+v", d.OS)
	}
	if d.CPU.Model.Value != "Nehalem" || len(d.CPU.Features) != 1 || d.CPU.Features[0].Name != "rdrand" {
		t.Errorf("cpu: %+v", d.CPU)
	}
	// Power-off, reboot and crash all end the domain, as -no-reboot does.
	if d.OnPoweroff != "destroy" || d.OnReboot != "destroy" || d.OnCrash != "destroy" {
		t.Errorf("on_poweroff %s, on_reboot %s, on_crash %s", d.OnPoweroff, d.OnReboot, d.OnCrash)
	}
	if d.Features == nil || d.Features.ACPI == nil {
		t.Error("no ACPI: the guest could not power off")
	}
	dev := d.Devices
	if len(dev.Interfaces) != 0 {
		t.Errorf("the domain has %d network interfaces; the guest reaches the proxy over the agent", len(dev.Interfaces))
	}
	if len(dev.Disks) != 2 {
		t.Fatalf("%d disks, want 2", len(dev.Disks))
	}
	in, scratch := dev.Disks[0], dev.Disks[1]
	if in.Source.File.File != "/r/input.iso" || in.ReadOnly == nil || in.Serial != "dibvm-input" || in.Driver.Type != "raw" || in.Alias.Name != "ua-disk0" {
		t.Errorf("input disk: %+v", in)
	}
	if scratch.Source.File.File != "/r/scratch,1.img" || scratch.ReadOnly != nil || scratch.Driver.Type != "qcow2" || scratch.Driver.Cache != "unsafe" || scratch.Target.Bus != "virtio" {
		t.Errorf("scratch disk: %+v", scratch)
	}
	if len(dev.Channels) != 1 || dev.Channels[0].Source.UNIX.Path != "/r/agent.sock" || dev.Channels[0].Target.VirtIO.Name != "org.dibvm.agent.0" {
		t.Errorf("agent channel: %s", s)
	}
	if len(dev.Serials) != 1 || dev.Serials[0].Source.File.Path != "/r/console.log" {
		t.Errorf("console: %s", s)
	}
	if dev.MemBalloon.Model != "none" || strings.Contains(s, "qemu:commandline") {
		t.Errorf("balloon or QEMU passthrough:\n%s", s)
	}
}

// A network whose rule libvirt's QEMU could not start is refused, never
// dropped or opened wider.
func TestDomainRefusesAGuestfwdRule(t *testing.T) {
	m := &vm.Machine{Name: "the helper VM", Arch: "amd64", Accel: "tcg", Memory: 512, CPUs: 1,
		Network: &vm.Network{Guestfwd: "tcp:10.0.2.100:3128-cmd:relay"}}
	if _, err := DomainXML(m, "dibvm-test"); err == nil || !strings.Contains(err.Error(), "guestfwd") {
		t.Errorf("a guestfwd network through libvirt: %v", err)
	}
}

func TestDomainCPU(t *testing.T) {
	for _, c := range []struct{ arch, accel, model, mode, name string }{
		{"amd64", "kvm", "auto", "host-passthrough", ""},
		{"amd64", "tcg", "max", "maximum", ""},
		{"arm64", "tcg", "auto", "maximum", ""},
		{"amd64", "tcg", "Skylake-Client", "custom", "Skylake-Client"},
	} {
		cpu := CPU(qemu.CPU(c.arch, c.accel, c.model))
		name := ""
		if cpu.Model != nil {
			name = cpu.Model.Value
		}
		if cpu.Mode != c.mode || name != c.name {
			t.Errorf("%s %s %s: mode %s model %q, want %s %q", c.arch, c.accel, c.model, cpu.Mode, name, c.mode, c.name)
		}
	}
}

func TestCheckURI(t *testing.T) {
	system := "only when run as root"
	if os.Getuid() == 0 {
		system = ""
	}
	for uri, want := range map[string]string{
		"qemu:///session":                    "",
		"qemu+unix:///session?socket=/x/s":   "",
		"qemu:///system":                     system,
		"qemu+ssh://h/system":                "a remote host's session daemon",
		"qemu:///embed?root=/x":              "give qemu:///session",
		"xen:///system":                      "libvirt's QEMU driver",
		"qemu+ssh://u@h/session":             "",
		"qemu+ssh:///session":                "over SSH only",
		"qemu+tcp://127.0.0.1:16509/session": "over SSH only",
		"%zz":                                "invalid URL escape",
	} {
		err := CheckURI(uri)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckURI(%q) = %v, want %q", uri, err, want)
		}
	}
}

// libvirt passes QEMU's error replies on as successes; the monitor must
// not.
func TestCheckReply(t *testing.T) {
	if _, err := checkReply([]byte(`{"return": {"status": "running"}, "id": "libvirt-7"}`)); err != nil {
		t.Errorf("a return: %v", err)
	}
	_, err := checkReply([]byte(`{"id": "libvirt-8", "error": {"class": "GenericError", "desc": "New overlay node-name missing"}}`))
	if err == nil || !strings.Contains(err.Error(), "New overlay node-name missing") {
		t.Errorf("an error reply gave %v", err)
	}
	if _, err := checkReply([]byte(`not json`)); err == nil {
		t.Error("a reply that is not JSON passed")
	}
}
