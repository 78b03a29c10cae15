package ocicache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/sshsign"
)

// Checkpoints is a registry as a build's shared cache of checkpoints
// (checkpoint.Shared): pulled from the first of From that has a key,
// signed by a key of Trusted; pushed to To, signed by Sign.
type Checkpoints struct {
	From    []*Remote
	Trusted sshsign.Trusted
	To      *Remote
	Sign    *sshsign.Signer
}

var _ checkpoint.Shared = (*Checkpoints)(nil)

// Fetch brings the chain of key from the first registry that has it
// signed by a trusted key.
func (c *Checkpoints) Fetch(ctx context.Context, key string, have func(string) (string, bool), dir string) ([]*checkpoint.Meta, map[string]string, error) {
	var errs []error
	for _, r := range c.From {
		desc, err := r.Pull(ctx, key, c.Trusted, dir, have)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var chain []*checkpoint.Meta
		if err := json.Unmarshal(desc.Data, &chain); err != nil {
			errs = append(errs, fmt.Errorf("%s: the checkpoints' descriptions: %w", r.Repo, err))
			continue
		}
		files := map[string]string{}
		for _, f := range desc.Files {
			files[f.Name] = f.Path()
		}
		return chain, files, nil
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return nil, nil, checkpoint.ErrNotShared
}

// Send pushes the chain of key, signed.
func (c *Checkpoints) Send(ctx context.Context, key string, chain []*checkpoint.Meta, files map[string]string) error {
	if c.To == nil || c.Sign == nil {
		return errors.New("no registry to push to, or no key to sign with (--cache-to, --cache-sign)")
	}
	data, err := json.Marshal(chain)
	if err != nil {
		return err
	}
	return c.To.Push(ctx, key, files, data, c.Sign)
}
