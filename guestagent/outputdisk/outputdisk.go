// Package outputdisk writes a build's outputs onto the output disk, one
// after another, and says where each lies.
package outputdisk

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/sysinit"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// Disk is the output disk.
type Disk struct {
	Open func() (*os.File, error) // opens it for writing
	Run  toolrun.Runner           // runs mksquashfs
	Out  io.Writer                // what people read
	Work string                   // scratch space for the squashfs
}

// New is the helper's output disk, found by its serial; the squashfs is
// made in work first.
func New(out io.Writer, work string) *Disk {
	return &Disk{Open: openOutput, Run: toolrun.Exec{}, Out: out, Work: work}
}

func openOutput() (*os.File, error) {
	dev, err := sysinit.FindDisk(api.OutputSerial, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(dev, os.O_WRONLY, 0)
}

// Outputs are what a build writes.
type Outputs struct {
	ImageSize int64    // the raw image already at the disk's start, 0 for none
	Types     []string // the output types asked for (api.Spec.Types)
	Tree      string   // the tree to archive
	Manifests string   // a directory whose files the host is to have, if any
	// Emitted are the files of EmittedDir that hooks wrote beside the
	// image, checked (see guestagent/emitted).
	EmittedDir string
	Emitted    []api.EmittedFile
	// Packages is the list of the packages the image has installed
	// (api.FormatPackages), nil for an image with no package database.
	Packages []byte
	// SourceDateEpoch, in a reproducible build, is the time no entry of
	// the tar or squashfs is later than: the same tree gives the same
	// bytes.
	SourceDateEpoch *int64
}

// treeTarOptions are tar's options for the tree outputs: xattrs and
// ACLs, and in a reproducible build, entries in name order, no time
// after the epoch, and none of the times (atime, ctime) that GNU tar's
// POSIX format would add for each entry.
func (o Outputs) treeTarOptions() []string {
	opts := []string{"--xattrs", "--acls"}
	if o.SourceDateEpoch != nil {
		opts = append(opts, "--sort=name", "--format=posix", fmt.Sprintf("--mtime=@%d", *o.SourceDateEpoch), "--clamp-mtime",
			"--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime")
	}
	return opts
}

// squashfsOptions are mksquashfs's, after the tree and the file: in a
// reproducible build, the filesystem's own time is the epoch (its
// files' are clamped already).
func (o Outputs) squashfsOptions() []string {
	opts := []string{"-comp", "xz", "-noappend", "-quiet", "-no-progress"}
	if o.SourceDateEpoch != nil {
		opts = append(opts, "-mkfs-time", strconv.FormatInt(*o.SourceDateEpoch, 10))
	}
	return opts
}

// Write writes the outputs after the image: any tar of the tree, then
// any squashfs, then a tar of the manifests if there are any, then the
// package list, then each emitted file.
func (d *Disk) Write(o Outputs) (api.Result, error) {
	res := api.Result{ImageSize: o.ImageSize, TarOffset: o.ImageSize}
	end := res.TarOffset
	if api.TreeArchive(o.Types) {
		n, err := d.writeTarOf(o.Tree, res.TarOffset, o.treeTarOptions()...)
		if err != nil {
			return res, err
		}
		res.TarSize = n
		end += n
	}
	if slices.Contains(o.Types, api.TypeSquashfs) {
		n, err := d.writeSquashfs(o.Tree, end, o.squashfsOptions())
		if err != nil {
			return res, err
		}
		res.SquashfsOffset, res.SquashfsSize = end, n
		end += n
	}
	if entries, _ := os.ReadDir(o.Manifests); len(entries) > 0 {
		n, err := d.writeTarOf(o.Manifests, end)
		if err != nil {
			return res, err
		}
		res.ManifestsOffset, res.ManifestsSize = end, n
		end += n
	}
	if len(o.Packages) > 0 {
		n, err := d.copyTo(bytes.NewReader(o.Packages), end)
		if err != nil {
			return res, err
		}
		res.PackagesOffset, res.PackagesSize = end, n
		end += n
	}
	for _, f := range o.Emitted {
		if err := d.writeEmitted(filepath.Join(o.EmittedDir, f.Name), f.Size, end); err != nil {
			return res, err
		}
		f.Offset = end
		res.Emitted = append(res.Emitted, f)
		end += f.Size
	}
	return res, nil
}

// writeEmitted copies the file at path, of the size it was checked at,
// onto the output disk at offset. It follows no link: the file must
// still be the regular file of that size it was.
func (d *Disk) writeEmitted(path string, size, offset int64) error {
	src, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("%s, beside the image: %w", path, err)
	}
	defer src.Close()
	if info, err := src.Stat(); err != nil || !info.Mode().IsRegular() || info.Size() != size {
		return fmt.Errorf("%s, beside the image, changed after it was checked", path)
	}
	fmt.Fprintf(d.Out, "Handing %s to the host\n", filepath.Base(path))
	n, err := d.copyTo(io.LimitReader(src, size), offset)
	if err == nil && n != size {
		err = fmt.Errorf("%s, beside the image, ended %d bytes short", path, size-n)
	}
	return err
}

// writeSquashfs makes a squashfs of tree in the work space and copies it
// onto the output disk at offset.
func (d *Disk) writeSquashfs(tree string, offset int64, opts []string) (int64, error) {
	fmt.Fprintln(d.Out, "Making the squashfs image")
	sq := filepath.Join(d.Work, "image.squash")
	if err := toolrun.Run(d.Run, "mksquashfs", append([]string{tree, sq}, opts...)...); err != nil {
		return 0, err
	}
	defer os.Remove(sq)
	src, err := os.Open(sq)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	return d.copyTo(src, offset)
}

// copyTo writes r onto the output disk at offset.
func (d *Disk) copyTo(r io.Reader, offset int64) (int64, error) {
	f, err := d.Open()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err != nil {
		return n, fmt.Errorf("write to the output disk: %w", err)
	}
	return n, f.Sync()
}

// writeTarOf streams a tar of dir onto the output disk at offset: tar
// runs for real, its output going straight to the disk.
func (d *Disk) writeTarOf(dir string, offset int64, opts ...string) (int64, error) {
	args := append([]string{"--numeric-owner"}, opts...)
	cmd := exec.Command("tar", append(args, "-C", dir, "-cf", "-", ".")...)
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, copyErr := d.copyTo(pipe, offset)
	if copyErr != nil {
		cmd.Process.Kill() // it would block on the pipe
	}
	if err := cmd.Wait(); err != nil && copyErr == nil {
		return 0, fmt.Errorf("tar %s: %w", dir, err)
	}
	return n, copyErr
}
