package dibbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// select_boot_kernel_initrd picks the kernel and initramfs DIB's picks,
// in trees laid out as each distribution lays out /boot.
func TestSelectBootKernelInitrd(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("the test needs bash")
	}
	lib := filepath.Join(t.TempDir(), "lib")
	if err := writeLib(lib); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		files   []string
		env     []string
		want    string
		failure bool
	}{
		{"debian", []string{"etc/debian_version", "boot/vmlinuz-6.1.0-9-amd64", "boot/vmlinuz-6.1.0-10-amd64",
			"boot/initrd.img-6.1.0-9-amd64", "boot/initrd.img-6.1.0-10-amd64", "boot/config-6.1.0-10-amd64"}, nil,
			"vmlinuz-6.1.0-10-amd64 initrd.img-6.1.0-10-amd64", false},
		{"ubuntu generic", []string{"etc/debian_version", "boot/vmlinuz-6.8.0-31-generic", "boot/vmlinuz-6.8.0-31-lowlatency",
			"boot/initrd.img-6.8.0-31-generic", "boot/initrd.img-6.8.0-31-lowlatency"}, nil,
			"vmlinuz-6.8.0-31-generic initrd.img-6.8.0-31-generic", false},
		{"red hat", []string{"etc/redhat-release", "boot/vmlinuz-5.14.0-70.el9.x86_64", "boot/vmlinuz-5.14.0-80.el9.x86_64+debug",
			"boot/initramfs-5.14.0-70.el9.x86_64.img"}, nil,
			"vmlinuz-5.14.0-70.el9.x86_64 initramfs-5.14.0-70.el9.x86_64.img", false},
		{"patterns", []string{"etc/debian_version", "boot/vmlinuz-a", "boot/my-kernel-2", "boot/my-kernel-10", "boot/my-initrd"},
			[]string{"DIB_BAREMETAL_KERNEL_PATTERN=my-kernel-*", "DIB_BAREMETAL_INITRD_PATTERN=my-initrd"},
			"my-kernel-10 my-initrd", false},
		// As DIB evaluates them: braces work, and what they match is
		// taken, a debug kernel too.
		{"patterns with braces", []string{"etc/debian_version", "boot/vmlinuz-5.1", "boot/vmlinuz-6.1-debug", "boot/vmlinuz-7", "boot/initrd-a", "boot/initrd-b"},
			[]string{"DIB_BAREMETAL_KERNEL_PATTERN=vmlinuz-{5,6}*", "DIB_BAREMETAL_INITRD_PATTERN=initrd-{a,b}"},
			"vmlinuz-6.1-debug initrd-b", false},
		{"no initramfs", []string{"etc/debian_version", "boot/vmlinuz-6.1.0-10-amd64"}, nil, "", true},
		{"no kernel", []string{"etc/debian_version"}, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := t.TempDir()
			for _, f := range tc.files {
				os.MkdirAll(filepath.Join(target, filepath.Dir(f)), 0o755)
				os.WriteFile(filepath.Join(target, f), nil, 0o644)
			}
			cmd := exec.Command(bash, "-c", `set -eu; set -o pipefail; source "$1/img-functions"; select_boot_kernel_initrd "$2"; echo "$KERNEL $RAMDISK"; [ "$BOOTDIR" = "$2/boot" ]`, "-", lib, target)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
			out, err := cmd.Output()
			switch {
			case tc.failure && err == nil:
				t.Errorf("found %q", out)
			case !tc.failure && (err != nil || string(out) != tc.want+"\n"):
				t.Errorf("got %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}
