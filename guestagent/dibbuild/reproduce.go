package dibbuild

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dibvm/dibvm/guestagent/reproducible"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// reproduce, in a reproducible build, tidies the finished tree (see
// guestagent/reproducible) and makes the image's filesystems again from
// a copy of it (see diskimage.Image.Remake). The copy goes where the
// tree was built, which the image made redundant: the scratch disk
// holds the tree twice at most.
func (b *build) reproduce() error {
	if b.spec.SourceDateEpoch == nil || b.opened != nil {
		return nil
	}
	epoch := time.Unix(*b.spec.SourceDateEpoch, 0)
	fmt.Fprintf(b.out, "Making the image reproducible: times clamped to %s\n", epoch.UTC().Format(time.RFC3339))
	removed, err := reproducible.Tidy(b.target, epoch)
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		fmt.Fprintf(b.out, "Removed, as they differ from run to run: %s\n", strings.Join(removed, " "))
	}
	if keys, _ := filepath.Glob(filepath.Join(b.target, "etc/ssh/ssh_host_*_key")); len(keys) > 0 {
		fmt.Fprintln(b.out, "Not reproducible: /etc/ssh/ssh_host_*_key, made at random when openssh-server was installed (every machine of this image would share them too): remove them in a finalise.d hook and have the first boot make its own")
	}
	if b.img == nil {
		return nil
	}
	if err := os.RemoveAll(b.built); err != nil {
		return err
	}
	if err := os.Mkdir(b.built, 0o755); err != nil {
		return err
	}
	if err := toolrun.Run(b.run, "cp", "-a", b.target+"/.", b.built+"/"); err != nil {
		return fmt.Errorf("copy the image's files: %w", err)
	}
	if err := b.img.Remake(b.built, b.out); err != nil {
		return err
	}
	b.final = b.built
	return nil
}

// presetIdentities, in a reproducible build, writes the files that keep
// packages from drawing a machine's identity at install time (see
// reproducible.Preset), once root.d has made the tree.
func (b *build) presetIdentities() error {
	if b.spec.SourceDateEpoch == nil || b.spec.Open {
		return nil
	}
	return reproducible.Preset(b.target)
}
