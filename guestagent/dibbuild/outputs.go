package dibbuild

import (
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/outputdisk"
)

// writeOutputs writes the asked-for outputs to the output disk and
// reports where they are: the raw image first, then any tar of the tree,
// then any squashfs, then the manifests, then the files hooks wrote
// beside the image.
func (b *build) writeOutputs() error {
	b.host.Tell(api.Message{Step: &api.Step{Name: api.StepOutputs}})
	files, err := b.emitted.Check("cleanup.d")
	if err != nil {
		return err
	}
	o := outputdisk.Outputs{Types: b.spec.Types, Tree: b.target, Manifests: b.manifests(), EmittedDir: emittedDir, Emitted: files}
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
