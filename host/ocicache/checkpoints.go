package ocicache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/sshsign"
)

// Checkpoints is registries as a build's shared cache of checkpoints
// (checkpoint.Shared): pulled from the first of From that has a key
// signed by a key of Trusted; pushed to To, signed by Sign. A registry
// that fails (down, silent, or refusing the user's credentials) is not
// asked again in this build, so that it costs one stall at most.
type Checkpoints struct {
	From    []*Remote
	Trusted sshsign.Trusted
	To      *Remote
	Sign    *sshsign.Signer

	mu   sync.Mutex
	down map[*Remote]bool
}

var _ checkpoint.Shared = (*Checkpoints)(nil)

// Fetch brings the chain of key from the first registry that has it
// signed by a trusted key.
func (c *Checkpoints) Fetch(ctx context.Context, key string, have func(string) (string, bool), dir string) ([]*checkpoint.Meta, map[string]string, error) {
	var errs []error
	for _, r := range c.From {
		if c.isDown(r) {
			continue
		}
		desc, err := r.Pull(ctx, key, c.Trusted, dir, have)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case errors.Is(err, ErrRefused):
			errs = append(errs, err)
			continue
		case err != nil:
			c.setDown(r)
			errs = append(errs, fmt.Errorf("%w (not asked again in this build)", err))
			continue
		}
		var chain []*checkpoint.Meta
		if err := json.Unmarshal(desc.Data, &chain); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: the checkpoints' descriptions: %w", ErrRefused, r.Repo, err))
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

// Send pushes the chain of key, signed; with no registry to push to, it
// is checkpoint.ErrNotShared.
func (c *Checkpoints) Send(ctx context.Context, key string, chain []*checkpoint.Meta, files map[string]string) error {
	if c.To == nil {
		return checkpoint.ErrNotShared
	}
	if c.Sign == nil {
		return errors.New("no key to sign with (--cache-sign)")
	}
	if c.isDown(c.To) {
		return fmt.Errorf("%s failed earlier in this build", c.To.Repo)
	}
	data, err := json.Marshal(chain)
	if err != nil {
		return err
	}
	var out []File
	for _, m := range chain {
		out = append(out, LocalFile(m.Layer, files[m.Layer], "sha256:"+m.Digest, m.Size))
	}
	if err := c.To.Push(ctx, key, out, data, c.Sign); err != nil {
		c.setDown(c.To)
		return err
	}
	return nil
}

func (c *Checkpoints) isDown(r *Remote) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down[r]
}

func (c *Checkpoints) setDown(r *Remote) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		c.down = map[*Remote]bool{}
	}
	c.down[r] = true
}
