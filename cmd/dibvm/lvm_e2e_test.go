//go:build e2e

package main_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/qemu"
)

// TestE2EBootableEFILVM builds debian-minimal with block-device-efi-lvm
// and boots it under OVMF: root, /var and /home on logical volumes of
// the layout's volume group, the root found by the initramfs.
func TestE2EBootableEFILVM(t *testing.T) {
	sourcesEnv, _ := debianSources(t)
	img := buildAsUser(t, "deb-efi-lvm", sourcesEnv, "vm", "block-device-efi-lvm", "debian-minimal", "devuser")
	checkLVMImage(t, img)
	fw, err := qemu.Host{}.FindUEFI("amd64")
	if err != nil {
		t.Fatalf("booting under UEFI: %v (scripts/install-deps.sh installs it)", err)
	}
	vars := filepath.Join(t.TempDir(), "vars.fd")
	copyFile(t, fw.Vars, vars)
	emulator := tool(t, "qemu-system-x86_64", "qemu-system-x86")
	// Single-threaded TCG, as bootAndCheck says why; no network.
	vm := loginOnConsole(t, emulator, []string{"-accel", "tcg,thread=single", "-m", "1024", "-smp", "2", "-nodefaults", "-display", "none",
		"-chardev", "stdio,id=s0,signal=off", "-serial", "chardev:s0",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + fw.Code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-drive", "file=" + img + ",if=virtio,format=qcow2,snapshot=on"}, 15*time.Minute)
	out := vm.run(t, "test -d /sys/firmware/efi && echo firmware=uefi; echo \"cmdline=$(cat /proc/cmdline)\"; "+
		"for m in / /var /home /boot/efi; do echo \"mount $m $(findmnt -n -o SOURCE,FSTYPE $m)\"; done; "+
		"echo \"lvs=$(sudo -n lvs --noheadings -o vg_name,lv_name,lv_active --separator : | tr -d ' ' | tr '\\n' ' ')\"", 5*time.Minute)
	for _, want := range []string{
		"firmware=uefi",
		"root=/dev/mapper/vg-lv_root",
		"mount / /dev/mapper/vg-lv_root xfs",
		"mount /var /dev/mapper/vg-lv_var xfs",
		"mount /home /dev/mapper/vg-lv_home xfs",
		"mount /boot/efi /dev/vda1 vfat",
		"lvs=vg:lv_home:active vg:lv_root:active vg:lv_var:active ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the booted system does not show %q:\n%s", want, out)
		}
	}
	io.WriteString(vm.stdin, "sudo -n poweroff\n")
}

// checkLVMImage checks the image from the host: the GPT, the volume
// group in the third partition with the layout's volumes in DIB's
// shares of it, and XFS labelled img-rootfs on the root volume.
func checkLVMImage(t *testing.T, img string) {
	t.Helper()
	qemuImg := tool(t, "qemu-img", "qemu-utils")
	if out, err := exec.Command(qemuImg, "check", img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check %s: %v\n%s", img, err, out)
	}
	raw := filepath.Join(t.TempDir(), "image.raw")
	if out, err := exec.Command(qemuImg, "convert", "-f", "qcow2", "-O", "raw", img, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	defer os.Remove(raw)
	pt := readPartitions(t, raw).PartitionTable
	if pt.Label != "gpt" || len(pt.Partitions) != 3 {
		t.Fatalf("partition table %+v, want a GPT of ESP, BSP and root", pt)
	}
	pv := pt.Partitions[2]
	// The physical volume's first MiB holds LVM's label and metadata.
	lvs := readLVM(t, extract(t, raw, pv.Start, 2048), "vg")
	total := lvs["lv_root"].sectors + lvs["lv_var"].sectors + lvs["lv_home"].sectors
	for name, share := range map[string]int64{"lv_root": 23, "lv_var": 57, "lv_home": 20} {
		got := lvs[name].sectors
		if got == 0 || got*100/total < share-1 || got*100/total > share {
			t.Errorf("%s: %d sectors of %d, want %d%% of the group", name, got, total, share)
		}
	}
	root := extract(t, raw, pv.Start+lvs["lv_root"].start, 2048)
	if typ, label := blkid(t, root, "TYPE"), blkid(t, root, "LABEL"); typ != "xfs" || label != "img-rootfs" {
		t.Errorf("root volume: %s labelled %q, want xfs labelled img-rootfs", typ, label)
	}
}
