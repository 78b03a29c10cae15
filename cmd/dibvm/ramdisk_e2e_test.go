//go:build e2e

package main_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// TestE2EDracutRamdiskDebian builds DIB's dracut-ramdisk on
// debian-minimal, with DIB's dracut-ramdisk and ramdisk-base taken from
// Debian's package as they are: dracut runs in the target with the
// library ramdisk-base copied from $_LIB, and ramdisk-base's cleanup.d
// hook brings IMAGE_NAME.initramfs and IMAGE_NAME.kernel back beside the
// image. The initramfs is read as the kernel reads it (cpio, compressed
// or not) and holds the 80deploy-ramdisk module's hooks with the init
// populate_init assembled; the kernel is the image's own.
//
// Two things are not DIB's as shipped, and both fail the same way in
// DIB on Debian (debian-minimal's stable):
//   - deploy-targetcli (a dependency of dracut-ramdisk) installs
//     "targetcli", a name Debian has no package for: its copy here
//     installs targetcli-fb, which has the same /usr/bin/targetcli;
//   - dracut-ramdisk's binary-deps name ifconfig, route and ping, which
//     debian-minimal lacks: -p net-tools,iputils-ping installs them.
//
// dracut-ramdisk's source-repository-dracut downloads a dracut tarball
// from kernel.org, which builds here cannot reach (and which Debian's
// build only downloads: it installs dracut from the archive).
// DIB_REPOLOCATION_dracut lends the build a small tarball the test makes
// instead.
func TestE2EDracutRamdiskDebian(t *testing.T) {
	dir, err := os.MkdirTemp("", "dibvm-e2e-dracut-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, e := range []string{"dracut-ramdisk", "ramdisk-base", "deploy-targetcli"} {
		src := filepath.Join(dibElements, e)
		if err := os.CopyFS(filepath.Join(dir, e), os.DirFS(src)); err != nil {
			t.Fatalf("the test needs DIB's %s at %s (Debian package python3-diskimage-builder): %v", e, src, err)
		}
	}
	writeFile(t, filepath.Join(dir, "deploy-targetcli", "package-installs.yaml"), "targetcli-fb:\n")
	tarball := filepath.Join(dir, "dracut-037.tar.xz")
	if out, err := exec.Command("tar", "-C", filepath.Join(dir, "dracut-ramdisk"), "-cJf", tarball, "README.rst").CombinedOutput(); err != nil {
		t.Fatalf("make the stand-in dracut tarball: %v\n%s", err, out)
	}
	// Read by the user the build runs as (see buildOutputAsUser).
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	sourcesEnv, _ := debianSources(t)
	env := append(sourcesEnv, "ELEMENTS_PATH="+dir, "DIB_REPOLOCATION_dracut="+tarball)
	img := buildOutputAsUser(t, "ramdisk", "tar", env, "-p", "net-tools,iputils-ping", "debian-minimal", "dracut-ramdisk")
	out := strings.TrimSuffix(img, ".tar")
	checkRamdiskKernel(t, img, out+".kernel")
	data, err := os.ReadFile(out + ".initramfs")
	if err != nil {
		t.Fatalf("no initramfs beside the image: %v", err)
	}
	files := initramfsFiles(t, data)
	var init, cmdline string
	for name, content := range files {
		switch {
		case strings.HasSuffix(name, "dracut/hooks/pre-mount/50-init.sh"):
			init = content
		case strings.HasSuffix(name, "dracut/hooks/cmdline/80-deploy-cmdline.sh"):
			cmdline = content
		}
	}
	for _, want := range []string{"source /init-func", "# init fragment from 00-override-troubleshoot", "emergency_shell",
		"# init fragment from 20-init-variables", "# init fragment from 40-check-network-ready", "reboot -f"} {
		if !strings.Contains(init, want) {
			t.Errorf("the 80deploy-ramdisk module's init lacks %q:\n%s", want, init)
		}
	}
	if !strings.Contains(cmdline, "rootok=1") {
		t.Errorf("no deploy-cmdline.sh hook in the initramfs: %q", cmdline)
	}
	for _, f := range []string{"init-func", "targetcli-wrapper", "iscsi-func"} {
		if _, ok := files[f]; !ok {
			t.Errorf("the initramfs has no /%s", f)
		}
	}
}

// checkRamdiskKernel checks that kernel has the bytes of the image's one
// /boot/vmlinuz-*, read from the image's tar.
func checkRamdiskKernel(t *testing.T, img, kernel string) {
	t.Helper()
	got, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatalf("no kernel beside the image: %v", err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var found []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if !strings.HasPrefix(name, "boot/vmlinuz-") || h.Typeflag != tar.TypeReg {
			continue
		}
		found = append(found, name)
		sum := sha256.New()
		io.Copy(sum, tr)
		if want := sha256.Sum256(got); !bytes.Equal(sum.Sum(nil), want[:]) {
			t.Errorf("%s is not the image's %s", kernel, name)
		}
	}
	if len(found) != 1 {
		t.Errorf("the image's kernels: %v, want one", found)
	}
}

// initramfsFiles reads an initramfs as the kernel does: newc cpio
// archives one after another, each uncompressed or compressed (gzip, xz,
// zstd), with zero padding between; it returns the regular files, by
// name without a leading slash.
func initramfsFiles(t *testing.T, data []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	for len(data) > 0 {
		data = bytes.TrimLeft(data, "\x00")
		var r io.Reader
		var err error
		switch {
		case len(data) == 0:
			return files
		case bytes.HasPrefix(data, []byte("070701")):
			data = readNewc(t, data, files)
			continue
		case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
			r, err = gzip.NewReader(bytes.NewReader(data))
		case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			var d *zstd.Decoder
			d, err = zstd.NewReader(bytes.NewReader(data))
			r = d
		case bytes.HasPrefix(data, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
			r, err = xz.NewReader(bytes.NewReader(data))
		default:
			t.Fatalf("the initramfs has a part that is neither cpio nor gzip, xz or zstd: % x", data[:min(16, len(data))])
		}
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(io.LimitReader(r, 2<<30))
		if err != nil {
			t.Fatalf("decompress the initramfs: %v", err)
		}
		// A compressed part is the last: the kernel reads it to its end.
		data = plain
	}
	return files
}

// readNewc reads one newc archive at the start of data into files and
// returns what follows its trailer.
func readNewc(t *testing.T, data []byte, files map[string]string) []byte {
	t.Helper()
	field := func(h []byte, i int) int {
		v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("a cpio header field is not hex: %q", h[6+8*i:14+8*i])
		}
		return int(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if len(data) < 110 || !bytes.HasPrefix(data, []byte("070701")) {
			t.Fatalf("a cpio header is cut short or has no newc magic")
		}
		mode, size, namesize := field(data, 1), field(data, 6), field(data, 11)
		nameEnd := 110 + namesize
		dataStart := align(nameEnd)
		if nameEnd > len(data) || dataStart+size > len(data) || namesize == 0 {
			t.Fatalf("a cpio entry runs past the archive's end")
		}
		name := string(data[110 : nameEnd-1])
		if name == "TRAILER!!!" {
			return data[align(dataStart+size):]
		}
		if mode&0o170000 == 0o100000 {
			files[strings.TrimPrefix(strings.TrimPrefix(name, "."), "/")] = string(data[dataStart : dataStart+size])
		}
		data = data[align(dataStart+size):]
	}
}
