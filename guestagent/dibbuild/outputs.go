package dibbuild

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/outputdisk"
	"github.com/dibvm/dibvm/guestagent/pkgdb"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// writeOutputs writes the asked-for outputs to the output disk (for a
// reproducible build, after making it so: see reproduce) and reports
// where they are: the raw image first, then any tar of the tree,
// then any squashfs, then the manifests, then the list of the image's
// packages, then the files hooks wrote beside the image.
func (b *build) writeOutputs() error {
	b.host.Tell(api.Message{Step: &api.Step{Name: api.StepOutputs}})
	// A reproducible build's image is made again here, its tree tidied
	// first: part of making the outputs, and timed with them.
	if err := b.reproduce(); err != nil {
		return err
	}
	files, err := b.emitted.Check("cleanup.d")
	if err != nil {
		return err
	}
	if err := b.saveManifests(); err != nil {
		return err
	}
	tree := cmp.Or(b.final, b.target)
	o := outputdisk.Outputs{Types: b.spec.Types, Tree: tree, Manifests: b.manifests(), EmittedDir: emittedDir, Emitted: files,
		Packages: b.packageList(tree), SourceDateEpoch: b.spec.SourceDateEpoch}
	if b.img != nil {
		o.ImageSize = b.img.Size
	}
	res, err := outputdisk.New(b.out, b.work).Write(o)
	if err != nil {
		return err
	}
	if b.img != nil {
		if err := b.img.Release(); err != nil {
			return err
		}
	}
	b.host.Tell(api.Message{Step: &api.Step{Name: api.StepOutputs, Done: true}})
	b.host.Tell(api.Message{Result: &res})
	return nil
}

// saveManifests adds to the manifests what hooks saved at DIB's default
// DIB_MANIFEST_SAVE_DIR, IMAGE_NAME.d, as DIB's own manifests element
// does: the host puts the manifests there.
func (b *build) saveManifests() error {
	dir := filepath.Join(b.emitted.Path, b.emitted.Skip)
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		return nil
	}
	return toolrun.Run(b.run, "cp", "-a", dir+"/.", b.manifests())
}

// packageList is the list of the packages tree has installed, for the
// host's lock file; nil, said why, when it cannot be read.
func (b *build) packageList(tree string) []byte {
	pkgs, err := pkgdb.Installed(b.run, tree)
	switch {
	case errors.Is(err, pkgdb.ErrNone):
		return nil
	case err != nil:
		fmt.Fprintf(b.out, "dibvm: no list of the image's packages for its lock file: %v\n", err)
		return nil
	}
	list, left := api.FormatPackages(pkgs)
	if left > 0 {
		fmt.Fprintf(b.out, "dibvm: %d of the image's packages are left out of its lock file: their names, versions or architectures are not dpkg's or rpm's, or there are more than %d\n", left, api.MaxPackages)
	}
	return list
}
