package main_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// DIB's ramdisk-base (from Debian's package, as it is) copies $_LIB's
// files into the target, and a hook that uses them as dracut-ramdisk's
// does, on tiny-os (ramdisk-lib-user), builds a ramdisk from them:
// find_kernel_version, mk_build_dir and its cleanup, populate_init and
// run_d all work in the chroot, and ramdisk-base's cleanup.d hook brings
// IMAGE_NAME.initramfs and IMAGE_NAME.kernel back beside the image.
func TestRamdiskBaseLibraryTinyOS(t *testing.T) {
	needVM(t)
	upstream := upstreamElements(t, "ramdisk-base")
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t) + ":" + upstream}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "tar", "-o", out, "ramdisk-lib-user")
	t.Logf("the build took %s", r.took.Round(time.Second))
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, tail(r.stdout, 60), tail(r.stderr, 80))
	}
	if b, err := os.ReadFile(out + ".kernel"); err != nil || string(b) != "kernel 6.1.0-10-amd64\n" {
		t.Errorf("img.kernel is not the newest kernel: %q, %v", b, err)
	}
	files := readCpio(t, out+".initramfs")
	wantInTar(t, files, map[string][]string{
		"init": {"source /init-func", "\n# init fragment from 20-init-variables\n", "\n# init fragment from 40-check-network-ready\n",
			"\n# init fragment from 50-ramdisk-lib-user\necho \"init fragment of ramdisk-lib-user\"\n", "reboot -f"},
		"init-func":           {"function get_kernel_parameter"},
		"ramdisk-install-ran": {"hooks at /tmp/in_target.d\n"},
		"ramdisk-lib-vars": {"ARCH=" + runtime.GOARCH + "\n", "KERNEL_VERSION=6.1.0-10-amd64\n", "MODULE_ROOT=\n", "LIB_UDEV_ROOT=\n",
			"BINARY_DEPS= cpio\n", "LEFT_BEHIND=\n"},
	})
	init := files["init"]
	if a, b, c := strings.Index(init, "20-init-variables"), strings.Index(init, "50-ramdisk-lib-user"), strings.Index(init, "reboot -f"); a < 0 || a > b || b > c {
		t.Errorf("init's parts are out of order:\n%s", init)
	}
	if _, err := os.Stat(out + ".tar"); err != nil {
		t.Errorf("no image beside the files: %v", err)
	}
}

// readCpio reads a newc cpio archive's regular files, by name.
func readCpio(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatalf("%s is no newc cpio archive: %v", path, err)
	}
	files := map[string]string{}
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT != cpio.S_IFREG {
			continue
		}
		b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(r.Name, "./")] = string(b)
	}
	return files
}
