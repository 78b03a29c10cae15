package machine

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/host/libvirt"
	"github.com/dibvm/dibvm/host/qemu"
	"github.com/dibvm/dibvm/host/rundir"
	"github.com/dibvm/dibvm/host/vm"
	"github.com/dibvm/dibvm/vmimage"
)

// helperSpec is the helper VM that opts describe, in a run directory of
// the test's.
func helperSpec(t *testing.T, accel string, opts Options) *vm.Machine {
	t.Helper()
	dir, err := rundir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Remove() })
	if opts.Appliance == nil {
		opts.Appliance = &vmimage.Appliance{Kernel: "k", Initrd: "i"}
	}
	m := &Machine{Arch: opts.Arch, Accel: accel, dir: dir}
	spec, err := m.helper("/usr/bin/qemu", accel, opts)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// The machine, console and CPU follow the guest's architecture, not the
// host's: an arm64 helper on an x86 host is a virt machine under TCG.
func TestArgsFollowTheGuestsArchitecture(t *testing.T) {
	for _, tc := range []struct {
		arch, accel     string
		model           string
		machine, cpu    string
		accelArg        string
		consoleDevice   string
		binary, aptName string
	}{
		{"amd64", "tcg", "", "pc", "Nehalem,+rdrand", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "tcg", "auto", "pc", "Nehalem,+rdrand", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "tcg", "max", "pc", "max", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "tcg", "qemu64", "pc", "qemu64,+rdrand", "tcg,thread=multi", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"amd64", "kvm", "max", "pc", "host", "kvm", "ttyS0", "qemu-system-x86_64", "qemu-system-x86"},
		{"arm64", "tcg", "auto", "virt", "max,pauth-impdef=on", "tcg,thread=multi", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
		{"arm64", "tcg", "max", "virt", "max,pauth-impdef=on", "tcg,thread=multi", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
		{"arm64", "tcg", "cortex-a57", "virt", "cortex-a57", "tcg,thread=multi", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
		{"arm64", "hvf", "", "virt", "host", "hvf", "ttyAMA0", "qemu-system-aarch64", "qemu-system-arm"},
	} {
		args := qemu.Args(helperSpec(t, tc.accel, Options{Arch: tc.arch, CPUModel: tc.model, Memory: 512, CPUs: 2}))
		for flag, want := range map[string]string{"-machine": tc.machine, "-cpu": tc.cpu, "-accel": tc.accelArg} {
			i := slices.Index(args, flag)
			if i < 0 || args[i+1] != want {
				t.Errorf("%s/%s: %s is not %q in %q", tc.arch, tc.accel, flag, want, args)
			}
		}
		if got := qemu.ConsoleDevice(tc.arch); got != tc.consoleDevice {
			t.Errorf("%s: console %s, want %s", tc.arch, got, tc.consoleDevice)
		}
		if got, _ := qemu.BinaryName(tc.arch); got != tc.binary {
			t.Errorf("%s: emulator %s, want %s", tc.arch, got, tc.binary)
		}
		if runtime.GOOS == "linux" && !strings.Contains(qemu.InstallHint(tc.arch), tc.aptName) {
			t.Errorf("%s: the install hint %q does not name %s", tc.arch, qemu.InstallHint(tc.arch), tc.aptName)
		}
	}
}

// The helper boots its kernel directly, with its disks named by serial
// and id (for QMP), its console, monitor and agent in the run directory,
// and a reboot ending it; one vCPU needs no threads under TCG.
func TestHelperArgs(t *testing.T) {
	spec := helperSpec(t, "tcg", Options{Arch: "amd64", Memory: 2048, CPUs: 1, Disks: []Disk{
		{Serial: "dibvm-scratch", Size: 1 << 20},
		{Serial: "dibvm-local", Source: "/home/u/a,b.img"},
		{Serial: "dibvm-layer", Layer: "/c/layer.qcow2"},
	}})
	spec.Network = &vm.Network{Guestfwd: "tcp:10.0.2.100:3128-cmd:relay"}
	line := strings.Join(qemu.Args(spec), " ")
	dir := spec.Dir
	for _, want := range []string{
		"-no-reboot", "-accel tcg -cpu Nehalem,+rdrand -m 2048 -smp 1",
		"-kernel k -initrd i -append console=ttyS0 ",
		"-chardev file,id=s0,path=" + dir + "/console.log -serial chardev:s0",
		"-chardev socket,id=qmp,path=" + dir + "/qmp.sock,server=on,wait=off -mon chardev=qmp,mode=control",
		"-chardev socket,id=agent,path=" + dir + "/agent.sock,server=on,wait=off -device virtserialport,bus=vser.0,chardev=agent,name=org.dibvm.agent.0",
		"-drive file=" + dir + "/input.iso,if=none,id=disk0,format=raw,cache=unsafe,readonly=on -device virtio-blk-pci,drive=disk0,serial=dibvm-input",
		"-drive file=" + dir + "/dibvm-scratch.img,if=none,id=disk1,format=raw,cache=unsafe -device virtio-blk-pci,drive=disk1,serial=dibvm-scratch",
		"-drive file=/home/u/a,,b.img,if=none,id=disk2,format=raw,cache=unsafe,readonly=on -device",
		"-drive file=/c/layer.qcow2,if=none,id=disk3,format=qcow2,cache=unsafe -device",
		"-netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:3128-cmd:relay -device virtio-net-pci,netdev=n0,romfile=",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("the helper's command line lacks %q:\n%s", want, line)
		}
	}
	for _, not := range []string{"thread=", "pflash", "snapshot=on", "hostfwd", "stdio"} {
		if strings.Contains(line, not) {
			t.Errorf("the helper's command line has %q:\n%s", not, line)
		}
	}
}

// Through libvirt the same helper is a domain with the same kernel, disks
// (each with its alias), console and agent channel, and no NIC: the
// guest reaches the host's service over the agent.
func TestHelperDomain(t *testing.T) {
	spec := helperSpec(t, "tcg", Options{Arch: "arm64", Memory: 1024, CPUs: 2, Disks: []Disk{{Serial: "dibvm-out", Size: 1 << 20}}})
	s, err := libvirt.DomainXML(spec, "dibvm-test")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<type arch="aarch64" machine="virt">hvm</type>`, "<kernel>k</kernel>", "<cmdline>console=ttyAMA0 ",
		`<on_reboot>destroy</on_reboot>`, `<cpu mode="maximum">`,
		`<source file="` + spec.Dir + `/dibvm-out.img">`, `<serial>dibvm-out</serial>`, `<alias name="ua-disk1">`,
		`<source path="` + spec.Dir + `/console.log">`, `name="org.dibvm.agent.0"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the helper's domain lacks %s:\n%s", want, s)
		}
	}
	for _, not := range []string{"<interface", "qemu:commandline", "<acpi", "<loader"} {
		if strings.Contains(s, not) {
			t.Errorf("the helper's domain has %s:\n%s", not, s)
		}
	}
}
