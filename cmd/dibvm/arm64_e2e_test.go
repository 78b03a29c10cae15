//go:build e2e

package main_test

import (
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/qemu"
)

// TestE2EArm64EFI builds an arm64 image (DIB's ARCH=arm64, as -a arm64) in
// an arm64 helper VM, which runs under TCG on an x86 host, and boots it
// under qemu-system-aarch64's virt machine with Debian's UEFI firmware for
// arm64 (AAVMF) to a login on its serial console.
func TestE2EArm64EFI(t *testing.T) {
	sourcesEnv, _ := debianSources(t)
	img := buildAsUser(t, "deb-arm64", append(sourcesEnv, "ARCH=arm64"),
		"vm", "block-device-efi", "debian-minimal", "devuser")
	checkArm64Image(t, img)
	bootArm64(t, img)
}

// checkArm64Image checks the image from the host (see checkDiskImage)
// and that GRUB boots the arm64 kernel on the arm64 serial console.
func checkArm64Image(t *testing.T, img string) {
	t.Helper()
	root, _ := checkDiskImage(t, img, "gpt")
	cfg := debugfsCat(t, root, "/boot/grub/grub.cfg")
	if !strings.Contains(cfg, "console=ttyAMA0") {
		t.Errorf("grub.cfg does not boot on the arm64 serial console:\n%s", tail(cfg, 20))
	}
	if !regexp.MustCompile(`vmlinuz-[0-9.+~a-z-]*-arm64`).MatchString(cfg) {
		t.Errorf("grub.cfg boots no arm64 kernel:\n%s", tail(cfg, 20))
	}
}

// bootArm64 boots img on a virt machine under AAVMF, logs in on the
// serial console as the dev user and checks that an arm64 Debian booted
// by UEFI from the image's root filesystem.
func bootArm64(t *testing.T, img string) {
	t.Helper()
	emulator := tool(t, "qemu-system-aarch64", "qemu-system-arm")
	fw, err := qemu.Host{}.FindUEFI("arm64")
	if err != nil {
		t.Fatalf("booting an arm64 image: %v (scripts/install-deps.sh installs it)", err)
	}
	myVars := filepath.Join(t.TempDir(), "vars.fd")
	copyFile(t, fw.Vars, myVars)
	disk := biggerOverlay(t, img, 0)
	// Single-threaded TCG, as for the x86 images: the guest kernel
	// patches its own code at boot.
	vm := loginOnConsole(t, emulator, []string{"-machine", "virt", "-cpu", "max", "-accel", "tcg,thread=single",
		"-m", "1024", "-smp", "2", "-nodefaults", "-display", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + fw.Code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + myVars,
		"-chardev", "stdio,id=s0,signal=off", "-serial", "chardev:s0",
		"-drive", "file=" + disk + ",if=none,id=d0,format=qcow2", "-device", "virtio-blk-pci,drive=d0"}, 20*time.Minute)
	out := vm.run(t, ". /etc/os-release; echo \"os=$ID machine=$(uname -m)\"; "+
		"echo \"cmdline=$(cat /proc/cmdline)\"; [ -d /sys/firmware/efi ] && echo booted=uefi; "+
		"echo \"root=$(findmnt -n -o SOURCE /)\"; ls -1 /dev/disk/by-label", 5*time.Minute)
	for _, want := range []string{"os=debian machine=aarch64", "root=LABEL=cloudimg-rootfs", "console=ttyAMA0",
		"booted=uefi", "cloudimg-rootfs\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the booted system does not show %q:\n%s", want, out)
		}
	}
	io.WriteString(vm.stdin, "sudo -n poweroff\n")
}
