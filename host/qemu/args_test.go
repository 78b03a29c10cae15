package qemu

import (
	"strings"
	"testing"

	"github.com/dibvm/dibvm/host/vm"
)

// Each part of a vm.Machine has its arguments, whichever VM it is: a
// helper's kernel, agent and named disks, or an image's disk, firmware
// and console.
func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m       vm.Machine
		want    []string
		wantNot []string
	}{
		{"direct kernel, named disks, agent, a reboot ends it",
			vm.Machine{Arch: "amd64", Accel: "tcg", TCGThread: "multi", CPUs: 2, Memory: 512, BIOS: "/q/qboot.rom",
				Kernel: "/k", Initrd: "/i", Cmdline: "console=ttyS0",
				Disks:   []vm.Disk{{Path: "/r/in.iso", Serial: "in", ReadOnly: true, Unsafe: true}, {Path: "/r/l.qcow2", Serial: "l", Format: "qcow2"}},
				Console: vm.Console{File: "/r/c,1.log"}, Monitor: "/r/qmp.sock", Agent: &vm.Channel{Socket: "/r/a.sock", Name: "p.0"}},
			[]string{"-no-reboot", "-accel tcg,thread=multi -cpu Nehalem,+rdrand -m 512 -smp 2 -bios /q/qboot.rom -kernel /k -initrd /i -append console=ttyS0 ",
				"-chardev file,id=s0,path=/r/c,,1.log -serial chardev:s0 ", "-mon chardev=qmp,mode=control", "virtserialport,bus=vser.0,chardev=agent,name=p.0",
				"-drive file=/r/in.iso,if=none,id=disk0,format=raw,cache=unsafe,readonly=on -device virtio-blk-pci,drive=disk0,serial=in ",
				"-drive file=/r/l.qcow2,if=none,id=disk1,format=qcow2 -device virtio-blk-pci,drive=disk1,serial=l -device virtio-rng-pci"},
			[]string{"pflash", "-netdev", "if=virtio"}},
		{"an image: UEFI, a snapshot disk, the terminal, a NIC",
			vm.Machine{Arch: "arm64", Accel: "tcg", TCGThread: "single", CPUModel: "max", CPUs: 1, Memory: 1024, Reboot: true,
				UEFI:    &vm.UEFI{Code: "/fw/code.fd", Vars: "/fw/vars.fd"},
				Disks:   []vm.Disk{{Path: "/img.qcow2", Format: "qcow2", Snapshot: true}},
				Console: vm.Console{Terminal: true}, Network: &vm.Network{Restrict: true, SSHPort: 2222}},
			[]string{"-machine virt -accel tcg,thread=single -cpu max,pauth-impdef=on",
				"-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/code.fd -drive if=pflash,format=raw,unit=1,snapshot=on,file=/fw/vars.fd",
				"-chardev stdio,id=s0,mux=on,signal=off -serial chardev:s0 -mon chardev=s0",
				"-drive file=/img.qcow2,if=virtio,format=qcow2,snapshot=on -device virtio-rng-pci",
				"-netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=n0,romfile="},
			[]string{"-no-reboot", "-kernel", "-bios", "qmp", "virtserialport", "guestfwd"}},
		{"a console socket, no NIC",
			vm.Machine{Arch: "amd64", Accel: "kvm", CPUs: 1, Memory: 256, Console: vm.Console{Socket: "/t/console.sock"}},
			[]string{"-accel kvm -cpu host", "-chardev socket,id=s0,path=/t/console.sock,server=on,wait=off -serial chardev:s0"},
			[]string{"-netdev", "-drive", "thread="}},
	} {
		line := strings.Join(Args(&tc.m), " ") + " "
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: the command line lacks %q:\n%s", tc.name, w, line)
			}
		}
		for _, w := range tc.wantNot {
			if strings.Contains(line, w) {
				t.Errorf("%s: the command line has %q:\n%s", tc.name, w, line)
			}
		}
	}
}
