package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// genericCloudLayout is laid out as CentOS's GenericCloud images are: a
// BIOS boot partition, an ESP, /boot and the root, both XFS and
// labelled.
const genericCloudLayout = `- local_loop:
    name: image0
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: BSP
        type: 'EF02'
        size: 1MiB
      - name: ESP
        type: 'EF00'
        size: 100MiB
        mkfs:
          type: vfat
          mount:
            mount_point: /boot/efi
      - name: boot
        type: 'EA00'
        size: 300MiB
        mkfs:
          type: xfs
          label: boot
          mount:
            mount_point: /boot
      - name: root
        type: '8300'
        size: 100%
        mkfs:
          type: xfs
          label: root
          mount:
            mount_point: /
`

// TestCustomizeImage opens an image dibvm built (laid out as a
// GenericCloud image, root and /boot on XFS) as an existing image, changes it into a new file of another
// format, changes that in place, and reads the changes back through
// customize itself; the original never changes, and a failing command
// writes nothing.
func TestCustomizeImage(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIB_USER_SETTING=customize", "DIB_BLOCK_DEVICE_CONFIG=" + genericCloudLayout}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "qcow2", "--image-size", "1", "-o", base, "user-element")
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stderr)
	}
	orig := sha256File(t, base+".qcow2")

	out := filepath.Join(dir, "custom.raw")
	r = dibvm(t, nil, 5*time.Minute, "customize", base+".qcow2", "-o", out, "-t", "raw", "--",
		"sh", "-c", "echo customized > /etc/dibvm-customized && echo on-the-esp > /boot/efi/dibvm-customized && echo done"+
			// Left running in the root, as a gpg-agent would be: stopped
			// before the image is put back.
			" && (cd /boot && sleep 600 >/dev/null 2>&1 &)")
	if r.code != 0 {
		t.Fatalf("customize -o: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "done") || !strings.Contains(r.stderr, "the image's root is /dev/vdb4 (xfs, label root), /boot /dev/vdb3 (xfs, label boot), /boot/efi /dev/vdb2 (vfat") {
		t.Errorf("customize -o: stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
	if got := sha256File(t, base+".qcow2"); got != orig {
		t.Error("customize -o changed the original image")
	}
	if fmt, err := exec.Command("qemu-img", "info", "--output=json", out).Output(); err != nil || !strings.Contains(string(fmt), `"format": "raw"`) {
		t.Errorf("the output is not a raw image: %v %s", err, fmt)
	}

	r = dibvm(t, nil, 5*time.Minute, "customize", "--in-place", out, "--", "sh", "-c", "echo again >> /etc/dibvm-customized")
	if r.code != 0 {
		t.Fatalf("customize --in-place: exit %d\n%s", r.code, r.stderr)
	}
	r = dibvm(t, nil, 5*time.Minute, "customize", "--in-place", out, "--", "cat", "/etc/dibvm-customized", "/boot/efi/dibvm-customized")
	if r.code != 0 || r.stdout != "customized\nagain\non-the-esp\n" {
		t.Errorf("reading the changes back: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}

	// With no -t, OUTPUT's extension says the format.
	vmdk := filepath.Join(dir, "custom.vmdk")
	r = dibvm(t, nil, 5*time.Minute, "customize", out, "-o", vmdk, "--", "true")
	if info, err := exec.Command("qemu-img", "info", "--output=json", vmdk).Output(); r.code != 0 || err != nil || !strings.Contains(string(info), `"format": "vmdk"`) {
		t.Errorf("customize -o custom.vmdk: exit %d, %v %s\n%s", r.code, err, info, r.stderr)
	}

	// A command that fails leaves no output and the image as it was.
	before := sha256File(t, out)
	failed := filepath.Join(dir, "failed.qcow2")
	r = dibvm(t, nil, 5*time.Minute, "customize", out, "-o", failed, "--", "sh", "-c", "rm -rf /etc; exit 3")
	if r.code != 3 || !strings.Contains(r.stderr, "nothing was written") {
		t.Errorf("a failing command: exit %d, want 3\n%s", r.code, r.stderr)
	}
	r = dibvm(t, nil, 5*time.Minute, "customize", "--in-place", out, "--", "sh", "-c", "rm -rf /etc; false")
	if r.code != 1 {
		t.Errorf("a failing command in place: exit %d, want 1\n%s", r.code, r.stderr)
	}
	if got := sha256File(t, out); got != before {
		t.Error("a failing command changed the image")
	}

	// Elements run in the image as in a build, with its root as
	// TMP_MOUNT_PATH: extra-data.d stages a file for install.d, the
	// command after -- runs after finalise.d, cleanup.d last.
	changed := filepath.Join(dir, "changed.qcow2")
	elEnv := []string{"ELEMENTS_PATH=" + testElements(t)}
	// An operating-system element may come too: its root.d does not run.
	r = dibvm(t, elEnv, 5*time.Minute, "customize", out, "-o", changed, "-e", "CHANGER_GREETING=hi", "image-changer", "tiny-os", "--", "cat", "/etc/dibvm-changer")
	if r.code != 0 {
		t.Fatalf("customize with an element: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"not running the hooks that make them, of tiny-os (root.d/10-tiny-root)",
		"Running hooks from /tmp/in_target.d/install.d in the target",
		// The command's output, among the build's lines.
		"| hi from install.d in /build/out/changed\n", "| root=xfs root mounts=/|/boot|/boot/efi\n", "| staged outside\n", "| finalise.d\n",
		// What cleanup.d left in the image goes before it is put back.
		"changer-left, which a hook left mounted in the image",
	} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("customize with an element: no %q in its output\n%s%s", want, r.stdout, r.stderr)
		}
	}
	if got := sha256File(t, out); got != before {
		t.Error("customize -o with an element changed the original image")
	}
	r = dibvm(t, nil, 5*time.Minute, "customize", "--in-place", changed, "--", "cat", "/etc/dibvm-changer", "/etc/dibvm-customized")
	if want := "hi from install.d in /build/out/changed\nroot=xfs root mounts=/|/boot|/boot/efi\nstaged outside\nfinalise.d\ncleanup.d\ncustomized\nagain\n"; r.code != 0 || r.stdout != want {
		t.Errorf("reading the element's changes back: exit %d, stdout %q, want %q\n%s", r.code, r.stdout, want, r.stderr)
	}

	// A hook that fails names its element and writes nothing.
	r = dibvm(t, elEnv, 5*time.Minute, "customize", out, "-o", failed, "-e", "CHANGER_FAIL=1", "image-changer")
	if r.code == 0 || !strings.Contains(r.stderr, "image-changer") || !strings.Contains(r.stderr, "50-change") {
		t.Errorf("a failing element: exit %d\n%s", r.code, r.stderr)
	}
	for _, e := range entries(t, dir) {
		if strings.HasPrefix(e, ".") || strings.HasPrefix(e, "failed") || strings.HasPrefix(e, "changed.note") {
			t.Errorf("left in the output directory: %s", e)
		}
	}
}

// TestCustomizeRefusesBadInput: each mistake is named before the VM
// boots, and nothing is left behind.
func TestCustomizeRefusesBadInput(t *testing.T) {
	work := t.TempDir()
	image := filepath.Join(work, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", image, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	overlay := filepath.Join(work, "overlay.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	vmdk := filepath.Join(work, "disk.vmdk")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "vmdk", vmdk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	runCases(t, work, []cliCase{
		{"--in-place on a VMDK", []string{"customize", vmdk, "--in-place", "--", "true"}, nil, 2, []string{"--in-place: " + vmdk + " is a vmdk image; dibvm changes raw and qcow2 images in place"}},
		{"no elements and no command", []string{"customize", image, "-o", "x.qcow2"}, nil, 2, []string{"give the ELEMENTs to run in " + image + ", or a COMMAND to run in it after --"}},
		{"nothing after --", []string{"customize", image, "-o", "x.qcow2", "--"}, nil, 2, []string{"give the COMMAND to run in the image after --"}},
		{"no image", []string{"customize", "-o", "x.qcow2", "--", "true"}, nil, 2, []string{"give the IMAGE to open first"}},
		{"an element that does not exist", []string{"customize", image, "-o", "x.qcow2", "no-such-element"}, nil, 1, []string{"no-such-element"}},
		{"neither -o nor --in-place", []string{"customize", image, "--", "true"}, nil, 2, []string{"give -o OUTPUT for the changed image, or --in-place"}},
		{"both -o and --in-place", []string{"customize", image, "-o", "x.qcow2", "--in-place", "--", "true"}, nil, 2, []string{"-o x.qcow2 and --in-place: give one"}},
		{"-t with --in-place", []string{"customize", image, "--in-place", "-t", "raw", "--", "true"}, nil, 2, []string{"-t raw and --in-place"}},
		{"an unknown -t", []string{"customize", image, "-o", "x.img", "-t", "iso", "--", "true"}, nil, 2, []string{"-t iso: customize writes raw, qcow2, vhd, vhdx, vmdk"}},
		{"an existing output", []string{"customize", image, "-o", overlay, "--", "true"}, nil, 2, []string{"-o " + overlay + ": the file exists; remove it or name another"}},
		{"an output in no directory", []string{"customize", image, "-o", "/nonexistent/x.qcow2", "--", "true"}, nil, 2, []string{"no directory /nonexistent to write it in"}},
		{"no such image", []string{"customize", filepath.Join(work, "none.qcow2"), "-o", "x.qcow2", "--", "true"}, nil, 1, []string{"none.qcow2: qemu-img cannot read it as a disk image"}},
		{"an overlay, which names another file", []string{"customize", overlay, "-o", "x.qcow2", "--", "true"}, nil, 1, []string{"it is an overlay on " + image}},
	})
}
