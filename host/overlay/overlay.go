// Package overlay lets a guest change an existing disk image through a
// qcow2 layer over it, so that the image itself changes only when the
// caller says so: the layer is written into a new file of any format
// (Convert), or into the image (Commit), once the guest has succeeded.
// A guest that fails, or a run that is stopped, leaves the image as it
// was.
package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Layer is a qcow2 layer over an image.
type Layer struct {
	Path   string // the layer, a qcow2 file
	Base   string // the image under it, absolute
	Format string // the image's format, as qemu-img names it
}

// New makes a layer in dir over image, whose format is format (as
// qemu-img names it, never guessed: the image's bytes are a guest's).
func New(ctx context.Context, dir, image, format string) (*Layer, error) {
	abs, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	l := &Layer{Path: filepath.Join(dir, "layer.qcow2"), Base: abs, Format: format}
	if err := qemuImg(ctx, "create", "-q", "-f", "qcow2", "-F", format, "-b", abs, l.Path); err != nil {
		return nil, err
	}
	return l, nil
}

// Commit writes what the guest changed into the image under the layer.
// qemu-img runs in a process group of its own, so that the terminal's
// Ctrl-C, meant for dibvm, does not stop it halfway through the image.
func (l *Layer) Commit(ctx context.Context) error {
	return qemuImg(ctx, "commit", "-q", "-f", "qcow2", l.Path)
}

// Convert writes the image as the guest left it to out as format, with
// the permissions mode, whole in one file: first beside out, then linked
// to out, never over an existing file (the caller's to refuse), so that
// out never holds part of an image.
func (l *Layer) Convert(ctx context.Context, out, format string, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-*")
	if err != nil {
		return err
	}
	tmp.Close()
	if err := qemuImg(ctx, "convert", "-f", "qcow2", "-O", format, l.Path, tmp.Name()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Link(tmp.Name(), out); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", out, err)
	}
	return os.Remove(tmp.Name())
}

func qemuImg(ctx context.Context, args ...string) error {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		return errors.New("qemu-img not found: it comes with QEMU (Debian and Ubuntu: apt-get install qemu-utils)")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
