// Package outputs turns the guest's output disk into the user's files:
// each output read off it (disk images converted by qemu-img from raw
// only), checksummed, staged beside its path and renamed into place once
// all are complete.
package outputs

import (
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/diskformat"
	"github.com/dibvm/dibvm/host/shellquote"
)

// Options say which outputs to write, and where.
type Options struct {
	Output string   // -o: the image name, with any directory
	Types  []string // -t
	// Uncompressed is -u: do not compress qcow2 images.
	Uncompressed bool
	// Checksums are the sums written beside each output (md5, sha256).
	Checksums []string
	// DockerTarget is the repository and tag of the docker output's
	// import line.
	DockerTarget string
	// ManifestSaveDir is where the manifests go, else beside the image.
	ManifestSaveDir string
	// QemuImgOptions is qemu-img convert's -o for qcow2.
	QemuImgOptions string
	// Pinned, for a reproducible build, makes disk images that are the
	// same bytes whenever the raw image is: qcow2 clusters in the
	// image's order, and the identifiers and times qemu-img puts in vhd,
	// vhdx and vmdk files pinned (see pinFormat).
	Pinned *Pinned
	// Stdout hears of each file written.
	Stdout io.Writer
	// Lock, when set, makes the lock file, IMAGE.lock, of the image
	// whose package database lists these packages (see host/lockfile).
	Lock func(installed []api.Package) ([]byte, error)
}

// Written is an output in place, with its size and SHA-256.
type Written struct {
	Path   string
	Size   int64
	SHA256 string
	// EmittedBy is, for a file hooks wrote beside the image, the phase
	// whose hooks wrote it.
	EmittedBy string
	// Lock says it is the lock file.
	Lock bool
}

// Write takes every output off the output disk into a temporary
// file beside its final path and, only when all are complete, renames
// them into place, moving existing files aside first as DIB does. Disk
// images are converted with qemu-img from raw only: the host never
// interprets what the guest made. It returns the outputs written, each
// with its size and sums (sha256 always).
func Write(ctx context.Context, o Options, disk string, r *api.Result) ([]Written, error) {
	var staged []*stagedFile
	defer func() {
		for _, s := range staged {
			os.RemoveAll(s.tmp)
		}
	}()
	for _, t := range o.Types {
		name, fill := treeOutput(o, t, disk, r)
		if fill == nil {
			continue
		}
		s, err := stage(name, fill)
		if err != nil {
			return nil, err
		}
		staged = append(staged, s)
	}
	// Everything after the raw image is read before the disk is cut to it.
	var manifests *stagedFile
	if r.ManifestsSize > 0 {
		dir := o.ManifestSaveDir
		if dir == "" {
			dir = o.Output + ".d"
		}
		var err error
		if manifests, err = stageManifests(filepath.Clean(dir), disk, r.ManifestsOffset, r.ManifestsSize); err != nil {
			return nil, err
		}
		defer os.RemoveAll(manifests.tmp) // gone once committed
	}
	emitted, err := stageEmitted(o, disk, r)
	defer removeStaged(emitted) // gone once committed
	if err != nil {
		return nil, err
	}
	lock, err := stageLock(o, disk, r)
	if err != nil {
		return nil, err
	}
	if lock != nil {
		defer os.Remove(lock.tmp) // gone once committed
	}
	images, err := stageImages(ctx, o, disk, r)
	staged = append(staged, images...)
	if err != nil {
		return nil, err
	}
	// Checksum files are written for dibvm's outputs, as DIB writes them
	// for its images; the hooks' files get their SHA-256 reported.
	outputs := slices.Clone(staged)
	sums, err := stageChecksums(outputs, o.Checksums)
	if err != nil {
		return nil, err
	}
	staged = append(staged, sums...)
	if _, err := stageChecksums(emitted, nil); err != nil {
		return nil, err
	}
	staged = append(staged, emitted...)
	if lock != nil {
		staged = append(staged, lock)
		outputs = append(outputs, lock)
	}
	if manifests != nil {
		staged = append(staged, manifests) // not checksummed: a directory
	}
	if err := commitAll(o, staged); err != nil {
		return nil, err
	}
	staged = nil
	var written []Written
	for _, w := range append(outputs, emitted...) {
		written = append(written, Written{Path: w.final, Size: w.size, SHA256: w.sums["sha256"], EmittedBy: w.emittedBy, Lock: w.lock})
	}
	return written, nil
}

// stageImages cuts the output disk to the raw image and stages each
// disk image type converted from it; on an error, those staged so far
// come back with it.
func stageImages(ctx context.Context, o Options, disk string, r *api.Result) ([]*stagedFile, error) {
	if r.ImageSize > 0 {
		// The raw image is the disk's first ImageSize bytes.
		if err := os.Truncate(disk, r.ImageSize); err != nil {
			return nil, err
		}
	}
	var staged []*stagedFile
	for _, t := range o.Types {
		format, ok := diskformat.QemuImg(t)
		if !ok {
			continue
		}
		if r.ImageSize == 0 {
			return staged, fmt.Errorf("-t %s: the build made no disk image", t)
		}
		s, err := stage(o.Output+"."+t, func(tmp *os.File) error {
			if err := convert(ctx, disk, tmp.Name(), format, o); err != nil {
				return err
			}
			if o.Pinned != nil {
				return pinFormat(tmp, format, filepath.Base(o.Output+"."+t), o.Pinned)
			}
			return nil
		})
		if err != nil {
			return staged, err
		}
		staged = append(staged, s)
	}
	return staged, nil
}

// commitAll renames the staged files into place, and says how to import
// a docker output.
func commitAll(o Options, staged []*stagedFile) error {
	for _, s := range staged {
		if err := s.commit(); err != nil {
			return err
		}
		if s.emittedBy != "" {
			fmt.Fprintf(o.Stdout, "File %s, from a %s hook, placed beside the image\n", s.final, s.emittedBy)
			continue
		}
		fmt.Fprintf(o.Stdout, "Image file %s created...\n", s.final)
	}
	if slices.Contains(o.Types, api.TypeDocker) {
		// No daemon is needed to build; this is how the tarball gets to one.
		target := o.DockerTarget
		if target == "" {
			target = filepath.Base(o.Output)
		}
		fmt.Fprintf(o.Stdout, "Import it into Docker with: %s\n", shellquote.Join("docker", "import", o.Output+".docker.tar", target))
	}
	return nil
}

// stageChecksums reads each output once for its sums, sha256 always and
// those of kinds (md5, sha256), and stages a file of each of kinds for
// each output, in the format md5sum and sha256sum write and check
// ("<sum>  <name>").
func stageChecksums(outputs []*stagedFile, kinds []string) ([]*stagedFile, error) {
	var out []*stagedFile
	for _, f := range outputs {
		hashes := map[string]hash.Hash{"sha256": sha256.New()}
		for _, k := range kinds {
			if k == "md5" {
				hashes[k] = md5.New()
			}
		}
		var ws []io.Writer
		for _, h := range hashes {
			ws = append(ws, h)
		}
		src, err := os.Open(f.tmp)
		if err != nil {
			return out, err
		}
		f.size, err = io.Copy(io.MultiWriter(ws...), src)
		src.Close()
		if err != nil {
			return out, err
		}
		f.sums = map[string]string{}
		for k, h := range hashes {
			f.sums[k] = hex.EncodeToString(h.Sum(nil))
		}
		for _, k := range kinds {
			line := f.sums[k] + "  " + filepath.Base(f.final) + "\n"
			sf, err := stage(f.final+"."+k, func(tmp *os.File) error {
				_, err := io.WriteString(tmp, line)
				return err
			})
			if err != nil {
				return out, err
			}
			out = append(out, sf)
		}
	}
	return out, nil
}

// treeOutput is the file name of an output type made from the tree, and
// how to fill it from the output disk; nil for the disk image types.
// tgz and docker are the guest's tar of the tree, gzipped or as it is:
// bytes the host passes on, never a filesystem it reads.
func treeOutput(o Options, t, disk string, r *api.Result) (string, func(*os.File) error) {
	tar := func(tmp *os.File) error { return copySection(tmp, disk, r.TarOffset, r.TarSize) }
	switch t {
	case api.TypeTar:
		return o.Output + ".tar", tar
	case api.TypeDocker:
		return o.Output + ".docker.tar", tar
	case api.TypeTgz:
		return o.Output + ".tgz", func(tmp *os.File) error {
			zw := gzip.NewWriter(tmp)
			if err := copySection(zw, disk, r.TarOffset, r.TarSize); err != nil {
				return err
			}
			return zw.Close()
		}
	case api.TypeSquashfs:
		return o.Output + ".squash", func(tmp *os.File) error {
			return copySection(tmp, disk, r.SquashfsOffset, r.SquashfsSize)
		}
	}
	return "", nil
}

// copySection copies length bytes at offset of the output disk to w.
func copySection(w io.Writer, disk string, offset, length int64) error {
	src, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer src.Close()
	n, err := io.Copy(w, io.NewSectionReader(src, offset, length))
	if err == nil && n != length {
		err = fmt.Errorf("the output disk ended %d bytes short", length-n)
	}
	return err
}

// convert writes the raw image disk to dst as format with qemu-img.
func convert(ctx context.Context, disk, dst, format string, o Options) error {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return errors.New("qemu-img not found: it comes with QEMU (Debian and Ubuntu: apt-get install qemu-utils)")
	}
	args := []string{"convert", "-f", "raw", "-O", format}
	if format == "qcow2" && !o.Uncompressed {
		args = append(args, "-c")
		if o.Pinned == nil {
			// -W lets qemu-img compress clusters on every core and write
			// each as it is ready, rather than one at a time in the
			// image's order: a 1.2 GiB image took 11.6 s instead of
			// 20.6 s on two cores. Only the order of clusters inside the
			// file changes, which a qcow2 reader never sees, but a
			// digest does.
			args = append(args, "-W")
		}
	}
	if o.Pinned != nil {
		// One request at a time: with qemu-img's default of eight,
		// one vmdk in a few came out different from the same raw
		// image, in a VM test; the same raw converted alone did not.
		args = append(args, "-m", "1")
	}
	if o.QemuImgOptions != "" && format == "qcow2" {
		args = append(args, "-o", o.QemuImgOptions)
	}
	args = append(args, disk, dst)
	out, err := exec.CommandContext(ctx, qemuImg, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stagedFile is an output written beside its final path, not yet renamed.
type stagedFile struct {
	final, tmp string
	size       int64
	sums       map[string]string // by kind (md5, sha256), once read
	emittedBy  string            // the phase, for a file hooks wrote beside the image
	lock       bool              // the lock file
}

// stage writes a file through fill into a temporary file beside final.
func stage(final string, fill func(*os.File) error) (*stagedFile, error) {
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(final)+".partial-*")
	if err != nil {
		return nil, err
	}
	s := &stagedFile{final: final, tmp: tmp.Name()}
	err = func() error {
		defer tmp.Close()
		// CreateTemp makes the file 0600; an image is as readable as any file.
		if err := tmp.Chmod(0o644); err != nil {
			return err
		}
		if err := fill(tmp); err != nil {
			return err
		}
		return tmp.Sync()
	}()
	if err != nil {
		os.Remove(s.tmp)
		return nil, fmt.Errorf("write %s: %w", final, err)
	}
	return s, nil
}

// commit moves an existing file at final aside and renames the staged
// file into place.
func (s *stagedFile) commit() error {
	if _, err := os.Lstat(s.final); err == nil {
		old := s.final + "-" + time.Now().Format("2006.01.02-15.04.05")
		if err := os.Rename(s.final, old); err != nil {
			return err
		}
	}
	return os.Rename(s.tmp, s.final)
}
