package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/host/plan"
)

// packageName is what -p takes, as install-packages passes it to the
// image's package manager: a Debian package name, optionally with an
// architecture and a version; or an rpm one (NetworkManager,
// python3-PyYAML), optionally with its arch (.x86_64). Which applies
// is the image's distribution's, which the elements decide; either way
// nothing that is no package name gets as far as the VM.
var packageName = regexp.MustCompile(`^([a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?(=[A-Za-z0-9.+~:-]+)?|[A-Za-z0-9][A-Za-z0-9_+.-]*)$`)

// checkTypeList checks -t: known types, each once.
func checkTypeList(raw string, types []string, p *problems) {
	if len(types) == 0 {
		p.add("-t %q: give at least one output type: %s", raw, strings.Join(plan.Supported, ", "))
		return
	}
	for i, t := range types {
		switch {
		case !slices.Contains(plan.Supported, t):
			p.add("-t %s: this dibvm cannot write that type yet; it writes: %s", t, strings.Join(plan.Supported, ", "))
		case slices.Contains(types[:i], t):
			p.add("-t %s: names %s twice", raw, t)
		}
	}
}

// checkOutput checks -o (a file name, in a directory that is there or
// can be made), and strips a type suffix from it as
// disk-image-create does when one type is asked for (-o img.qcow2 -t
// qcow2 writes img.qcow2, not img.qcow2.qcow2).
func checkOutput(o *plan.Options, p *problems) {
	if o.Output == "" {
		p.add(`-o "": give the image's file name, without the type suffix, e.g. -o image`)
		return
	}
	if len(o.Types) == 1 {
		o.Output = strings.TrimSuffix(o.Output, "."+o.Types[0])
	}
	// -o out, where out is a directory, writes out.qcow2 beside it, as in
	// DIB; -o out/ names no file at all.
	if strings.HasSuffix(o.Output, "/") {
		p.add("-o %s: names a directory; give the image's file name in it, without the type suffix, e.g. -o %s", o.Output, filepath.Join(o.Output, "image"))
		return
	}
	// The output's directory is made if need be (-o out/deb in a fresh
	// checkout), so what must be writable is the nearest that exists.
	if err := checkWritableDir(filepath.Dir(o.Output)); err != nil {
		p.add("-o %s: %v", o.Output, err)
	}
}

// checkWritableDir checks a directory the build will make if need be and
// write in: it, or the nearest directory above it that exists, must be a
// directory this user can write in. It makes nothing.
func checkWritableDir(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		switch {
		case (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && d != filepath.Dir(d):
			continue // made by the build, if what is above it allows
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", d)
		}
		if err := writable(d); err != nil {
			return fmt.Errorf("cannot write in %s: %v", d, err)
		}
		return nil
	}
}

// writable asks the kernel whether this user may make files in dir: it
// knows read-only mounts and permissions, and nothing is left behind.
func writable(dir string) error {
	return unix.Access(dir, unix.W_OK|unix.X_OK)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// checkQemuImgOptions has qemu-img make a small qcow2 with the options,
// in a directory removed at once: the options then fail here, in a
// second, and not at the end of the build. Without qemu-img there is
// nothing to ask; the build says so later.
func checkQemuImgOptions(opts string) error {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "dibvm-qemu-img-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	probe := filepath.Join(dir, "probe.qcow2")
	out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", "-o", opts, probe, "1M").CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, "qemu-img: "), probe+": ")
		return fmt.Errorf("qemu-img refuses them for qcow2: %s", msg)
	}
	return nil
}
