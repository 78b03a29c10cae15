//go:build e2e

package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dibElements is where Debian's diskimage-builder package keeps DIB's
// own elements: the baremetal element is taken from there as it is, at
// test time.
const dibElements = "/usr/lib/python3/dist-packages/diskimage_builder/elements"

// TestE2EBaremetalKernelAndInitrd builds with DIB's baremetal element,
// unchanged: its cleanup.d hook sources $_LIB/img-functions, picks the
// image's kernel and initramfs with select_boot_kernel_initrd and copies
// them to ${IMAGE_NAME}.vmlinuz and ${IMAGE_NAME}.initrd, which arrive
// beside the image, the same bytes as the image's /boot holds.
func TestE2EBaremetalKernelAndInitrd(t *testing.T) {
	src := filepath.Join(dibElements, "baremetal")
	if !fileExists(filepath.Join(src, "cleanup.d", "99-extract-kernel-and-ramdisk")) {
		t.Fatalf("the test needs DIB's baremetal element at %s (Debian package python3-diskimage-builder)", src)
	}
	dir, err := os.MkdirTemp("", "dibvm-e2e-dib-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.CopyFS(filepath.Join(dir, "baremetal"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	sourcesEnv, _ := debianSources(t)
	img := buildAsUser(t, "bm", append(sourcesEnv, "ELEMENTS_PATH="+dir), "vm", "baremetal", "debian-minimal")
	out := strings.TrimSuffix(img, ".qcow2")
	root, _ := checkDiskImage(t, img, "dos")
	listing, err := exec.Command(tool(t, "debugfs", "e2fsprogs"), "-R", "ls -p /boot", root).Output()
	if err != nil {
		t.Fatalf("debugfs ls /boot: %v", err)
	}
	for suffix, pattern := range map[string]string{".vmlinuz": `vmlinuz-[^/]+`, ".initrd": `initrd\.img-[^/]+`} {
		name := regexp.MustCompile(`/(` + pattern + `)/`).FindStringSubmatch(string(listing))
		if name == nil {
			t.Errorf("the image's /boot has no %s:\n%s", pattern, listing)
			continue
		}
		got, err := os.ReadFile(out + suffix)
		if err != nil {
			t.Errorf("%s did not arrive beside the image: %v", out+suffix, err)
			continue
		}
		if want := debugfsCat(t, root, "/boot/"+name[1]); !bytes.Equal(got, []byte(want)) || len(got) < 1<<20 {
			t.Errorf("%s is %d bytes, not the image's /boot/%s (%d bytes)", out+suffix, len(got), name[1], len(want))
		}
	}
}
