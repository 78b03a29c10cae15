package plan

import (
	"fmt"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/sha256sum"
)

// Checkpoints say where and how long a build keeps its trees.
type Checkpoints struct {
	Store  *checkpoint.Store
	Limits checkpoint.Limits // --checkpoint-max-age, --cache-max-size
	// Shared, when set, is the registries the build takes checkpoints
	// from and sends them to (--cache-from, --cache-to).
	Shared checkpoint.Shared
}

// planCheckpoints sets the steps a build with checkpoints may keep: none
// with break=, where a shell may change the tree.
func (p *Plan) planCheckpoints() error {
	if p.Options.Checkpoints == nil {
		return nil
	}
	if p.Spec.Break != "" {
		fmt.Fprintln(p.Options.Stdout, "dibvm: break= is set: this build neither resumes from checkpoints nor keeps any, since a shell may change the tree")
		return nil
	}
	host, err := p.hostInputs()
	if err != nil {
		return err
	}
	p.Steps, err = checkpoint.StepInputs(p.Spec, host, p.elementsTar())
	return err
}

// hostInputs are the host's files that reach the guest, by their
// digests: what of the host shapes each checkpoint.
func (p *Plan) hostInputs() ([]checkpoint.HostInput, error) {
	var host []checkpoint.HostInput
	for _, loan := range p.Lender.Loans() {
		host = append(host, checkpoint.HostInput{Name: "host path " + loan.Var, Digest: loan.Digest})
	}
	for k, serial := range p.Spec.HostDisks {
		for _, d := range p.HostDisks {
			if d.Serial == serial {
				digest, _, err := sha256sum.File(d.Source)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", k, err)
				}
				host = append(host, checkpoint.HostInput{Name: "host file " + k, Digest: digest})
			}
		}
	}
	return host, nil
}
