package cli

import (
	"io"
	"slices"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/plan"
	"github.com/dibvm/dibvm/host/session"
	"github.com/dibvm/dibvm/host/termsafe"
)

// A plan's job carries its settings to the session: the outputs as
// asked for, the disks lent, and where checkpoints are kept.
func TestJobOfPlan(t *testing.T) {
	out := termsafe.NewWriter(nil)
	store := &checkpoint.Store{Dir: t.TempDir()}
	p := &plan.Plan{
		Options: plan.Options{
			Output: "/tmp/img", Types: []string{"qcow2", "tar"}, Uncompressed: true, Checksums: []string{"sha256"},
			ManifestSaveDir: "/tmp/m", QemuImgOptions: "compat=1.1", ImageCache: "/tmp/cache", Offline: true,
			ScratchSize: 1 << 30, Checkpoints: &plan.Checkpoints{Store: store, Limits: checkpoint.Limits{MaxSize: 5}},
			Stdout: out,
		},
		Stdout:    out,
		Spec:      &api.Spec{ImageName: "img"},
		HostDisks: []plan.HostDisk{{Serial: "dib-local-image", Source: "/tmp/base.qcow2"}},
		Steps:     []*checkpoint.Step{{}},
	}
	j := job(p)
	o := j.Outputs
	if o.Output != "/tmp/img" || !slices.Equal(o.Types, p.Options.Types) || !o.Uncompressed || o.ManifestSaveDir != "/tmp/m" || o.QemuImgOptions != "compat=1.1" || o.Stdout != out {
		t.Errorf("the outputs: %+v", o)
	}
	if j.Spec != p.Spec || j.Stdout != out || j.ScratchSize != 1<<30 || j.ImageCache != "/tmp/cache" || !j.Offline {
		t.Errorf("the job: %+v", j)
	}
	if !slices.Equal(j.HostDisks, []session.HostDisk{{Serial: "dib-local-image", Source: "/tmp/base.qcow2"}}) {
		t.Errorf("the disks lent: %+v", j.HostDisks)
	}
	if len(j.Steps) != 1 || j.Store != store || j.Limits.MaxSize != 5 {
		t.Errorf("the checkpoints: %v steps, store %v, limits %+v", len(j.Steps), j.Store, j.Limits)
	}
	if j.SignedSources == nil {
		t.Error("the job has no signed sources")
	}
}

// A build in an opened image (customize) tells nothing of the files it
// writes itself: they go to a directory that is removed.
func TestJobOfOpenedImageKeepsItsFilesQuiet(t *testing.T) {
	out := termsafe.NewWriter(nil)
	p := &plan.Plan{
		Options: plan.Options{Output: "/tmp/work/img", Open: "/tmp/layer.qcow2", Stdout: out},
		Stdout:  out,
		Spec:    &api.Spec{ImageName: "img"},
	}
	j := job(p)
	if j.Outputs.Stdout != io.Discard || j.ImageLayer != "/tmp/layer.qcow2" || j.Stdout != out {
		t.Errorf("the job of an opened image: outputs say to %v, layer %q, the build says to %v", j.Outputs.Stdout, j.ImageLayer, j.Stdout)
	}
}
