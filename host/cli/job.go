package cli

import (
	"io"
	"os"

	"github.com/dibvm/dibvm/host/outputs"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/session"
)

// The command line is where a plan meets a session: plan knows nothing of
// VMs, and session nothing of how its job was planned.

// job is the session's part of p: what the helper VM runs, and the
// settings the session reads.
func job(p *plan.Plan) *session.Job {
	o := p.Options
	j := &session.Job{
		Spec: p.Spec, Inputs: p.Inputs, Hooks: p.Hooks, Order: p.Order,
		SignedSources: p.SignedSources,
		Steps:         p.Steps,
		ScratchSize:   o.ScratchSize, ImageCache: o.ImageCache, Offline: o.Offline,
		Outputs: outputs.Options{
			Output: o.Output, Types: o.Types, Uncompressed: o.Uncompressed, Checksums: o.Checksums,
			DockerTarget: o.DockerTarget, ManifestSaveDir: o.ManifestSaveDir, QemuImgOptions: o.QemuImgOptions,
			Stdout: o.Stdout,
		},
		Stdout: p.Stdout, Progress: o.Progress, Term: os.Getenv("TERM"),
		ImageLayer: o.Open,
	}
	if pf := o.PackagesFrom; pf != nil {
		j.Replay, j.ReplayName = pf.Lock, pf.Name
	}
	if r := o.Reproducible; r != nil {
		j.Outputs.Pinned = &outputs.Pinned{Epoch: r.Epoch, Seed: r.Seed}
	}
	if o.Open == "" {
		j.Provenance, j.Sign = p.Provenance, o.Sign
		j.Version = Version
		j.Commit, _ = builtFrom()
	} else {
		// A build in an opened image (customize) writes what it makes
		// itself into a directory that is removed: its files are not the
		// user's to hear of.
		j.Outputs.Stdout = io.Discard
	}
	for _, d := range p.HostDisks {
		j.HostDisks = append(j.HostDisks, session.HostDisk{Serial: d.Serial, Source: d.Source})
	}
	if c := o.Checkpoints; c != nil {
		j.Store, j.Limits, j.Shared = c.Store, c.Limits, c.Shared
	}
	return j
}
