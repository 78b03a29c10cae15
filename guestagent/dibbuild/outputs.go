package dibbuild

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/sysinit"
)

// finishTree restores resolv.conf and empties /tmp, as DIB does before
// the tree becomes an image.
func (b *build) finishTree() error {
	conf := filepath.Join(b.target, "etc", "resolv.conf")
	os.Remove(conf)
	os.Remove(filepath.Join(b.target, resolvAbsent))
	if exists(filepath.Join(b.target, resolvSaved)) {
		if err := os.Rename(filepath.Join(b.target, resolvSaved), conf); err != nil {
			return err
		}
	}
	tmp := filepath.Join(b.target, "tmp")
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
	return nil
}

// writeOutputs writes the asked-for outputs to the output disk and
// reports where they are: the raw image first, then any tar of the tree,
// then any squashfs.
func (b *build) writeOutputs() error {
	b.tell(api.Message{Step: &api.Step{Name: api.StepOutputs}})
	var res api.Result
	if b.img != nil {
		res.ImageSize, res.TarOffset = b.img.size, b.img.size
	}
	end := res.TarOffset
	if api.TreeArchive(b.spec.Types) {
		n, err := b.writeTar(res.TarOffset)
		if err != nil {
			return err
		}
		res.TarSize = n
		end += n
	}
	if slices.Contains(b.spec.Types, api.TypeSquashfs) {
		n, err := b.writeSquashfs(end)
		if err != nil {
			return err
		}
		res.SquashfsOffset, res.SquashfsSize = end, n
		end += n
	}
	if entries, _ := os.ReadDir(b.manifests()); len(entries) > 0 {
		n, err := b.writeManifests(end)
		if err != nil {
			return err
		}
		res.ManifestsOffset, res.ManifestsSize = end, n
	}
	if b.img != nil {
		if err := b.img.release(); err != nil {
			return err
		}
	}
	b.tell(api.Message{Step: &api.Step{Name: api.StepOutputs, Done: true}})
	b.tell(api.Message{Result: &res})
	return nil
}

// manifests is where the manifests element leaves what goes to the host.
func (b *build) manifests() string { return filepath.Join(root, "manifests") }

// writeManifests writes a tar of the manifests onto the output disk at
// offset.
func (b *build) writeManifests(offset int64) (int64, error) {
	return b.writeTarOf(b.manifests(), offset)
}

// writeSquashfs makes a squashfs of the tree on the scratch disk and
// copies it onto the output disk at offset.
func (b *build) writeSquashfs(offset int64) (int64, error) {
	fmt.Fprintln(b.out, "Making the squashfs image")
	sq := filepath.Join(b.work, "image.squash")
	if err := run("mksquashfs", b.target, sq, "-comp", "xz", "-noappend", "-quiet", "-no-progress"); err != nil {
		return 0, err
	}
	defer os.Remove(sq)
	src, err := os.Open(sq)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	return b.copyToOutput(src, offset)
}

// copyToOutput writes r onto the output disk at offset.
func (b *build) copyToOutput(r io.Reader, offset int64) (int64, error) {
	dev, err := sysinit.FindDisk(api.OutputSerial, 10*time.Second)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
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

// writeTar streams the tree as a tar archive onto the output disk at
// offset.
func (b *build) writeTar(offset int64) (int64, error) {
	return b.writeTarOf(b.target, offset, "--xattrs", "--acls")
}

// writeTarOf streams a tar of dir onto the output disk at offset.
func (b *build) writeTarOf(dir string, offset int64, opts ...string) (int64, error) {
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
	n, copyErr := b.copyToOutput(pipe, offset)
	if copyErr != nil {
		cmd.Process.Kill() // it would block on the pipe
	}
	if err := cmd.Wait(); err != nil && copyErr == nil {
		return 0, fmt.Errorf("tar %s: %w", dir, err)
	}
	return n, copyErr
}
