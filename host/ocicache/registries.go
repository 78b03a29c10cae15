package ocicache

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/sshsign"
	"github.com/dibvm/dibvm/vmimage"
)

// Registries are a build's shared cache of checkpoints
// (checkpoint.Shared) and of helper appliance bases (vmimage.Shared):
// pulled from the first of From that has a key signed by a key of
// Trusted; pushed to To, signed by Sign. A registry
// that fails (down, silent, or refusing the user's credentials) is not
// asked again in this build, so that it costs one stall at most.
type Registries struct {
	From    []*Remote
	Trusted sshsign.Trusted
	To      *Remote
	Sign    *sshsign.Signer

	mu   sync.Mutex
	down map[string]bool // by registry: --cache-from and --cache-to may name one
}

var (
	_ checkpoint.Shared = (*Registries)(nil)
	_ vmimage.Shared    = (*Registries)(nil)
)

// Fetch brings the chain of key from the first registry that has it
// signed by a trusted key, and whose chain accept takes.
func (c *Registries) Fetch(ctx context.Context, key string, have func(string) (string, bool), partials, into string, accept func([]*checkpoint.Meta) error) ([]*checkpoint.Meta, map[string]string, error) {
	var chain []*checkpoint.Meta
	desc, err := c.pull(ctx, key, have, partials, into, func(d *Description) error {
		chain = nil
		if err := json.Unmarshal(d.Data, &chain); err != nil {
			return fmt.Errorf("the checkpoints' descriptions: %w", err)
		}
		return accept(chain)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, nil, checkpoint.ErrNotShared
	}
	if err != nil {
		return nil, nil, err
	}
	files := map[string]string{}
	for _, f := range desc.Files {
		files[f.Name] = f.Path()
	}
	return chain, files, nil
}

// Sends says whether there is a registry to push to.
func (c *Registries) Sends() bool { return c.To != nil && c.Sign != nil && !c.isDown(c.To) }

// Send pushes the chain of key, signed; with no registry to push to, it
// is checkpoint.ErrNotShared.
func (c *Registries) Send(ctx context.Context, key string, chain []*checkpoint.Meta, files map[string]string) error {
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

// pull brings the artifact of key from the first registry that has it
// signed by a trusted key, or says why none did.
func (c *Registries) pull(ctx context.Context, key string, have func(string) (string, bool), partials, into string, accept func(*Description) error) (*Description, error) {
	var errs []error
	for _, r := range c.From {
		if c.isDown(r) {
			continue
		}
		desc, err := r.Pull(ctx, key, c.Trusted, partials, into, have, accept)
		switch {
		case err == nil:
			return desc, nil
		case errors.Is(err, ErrNotFound):
		case errors.Is(err, ErrRefused), errors.Is(err, errLocal):
			errs = append(errs, err)
		default:
			c.setDown(r)
			errs = append(errs, fmt.Errorf("%w (not asked again in this build)", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, ErrNotFound
}

// FetchBase brings an appliance base: its files, and its keyrings/ as
// keyrings.NAME.
func (c *Registries) FetchBase(ctx context.Context, key, dir string) error {
	partials := filepath.Join(dir, ".partials")
	if err := os.Mkdir(partials, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(partials)
	desc, err := c.pull(ctx, key, func(string) (string, bool) { return "", false }, partials, dir, nil)
	if errors.Is(err, ErrNotFound) {
		return vmimage.ErrNotShared
	}
	if err != nil {
		return err
	}
	for _, f := range desc.Files {
		switch {
		case f.Name == "vmlinuz", f.Name == "base.cpio", f.Name == "manifest.json", strings.HasPrefix(f.Name, "keyrings."):
		default:
			return fmt.Errorf("%w: an appliance base with a file %q", ErrRefused, f.Name)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "keyrings"), 0o755); err != nil {
		return err
	}
	for _, f := range desc.Files {
		if n, ok := strings.CutPrefix(f.Name, "keyrings."); ok {
			if err := os.Rename(f.Path(), filepath.Join(dir, "keyrings", n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// SendBase pushes the appliance base in dir under each of keys the
// registry lacks: under all if it lacks the first, which names the base
// by its packages (a base new to it is what the later keys name now).
func (c *Registries) SendBase(ctx context.Context, keys []string, dir string) error {
	if c.To == nil {
		return vmimage.ErrNotShared
	}
	if c.Sign == nil || c.isDown(c.To) {
		return fmt.Errorf("%s: no key to sign with, or failed earlier in this build", c.To.Repo)
	}
	var send []string
	for i, key := range keys {
		has, err := c.To.Has(ctx, key)
		if err != nil {
			c.setDown(c.To)
			return err
		}
		if i == 0 && !has {
			send = keys
			break
		}
		if !has {
			send = append(send, key)
		}
	}
	if len(send) == 0 {
		return vmimage.ErrHaveIt
	}
	var files []File
	add := func(name, path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		files = append(files, LocalFile(name, path, fmt.Sprintf("sha256:%x", h.Sum(nil)), n))
		return nil
	}
	for _, n := range []string{"vmlinuz", "base.cpio", "manifest.json"} {
		if err := add(n, filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	rings, err := os.ReadDir(filepath.Join(dir, "keyrings"))
	if err != nil {
		return err
	}
	for _, e := range rings {
		if err := add("keyrings."+e.Name(), filepath.Join(dir, "keyrings", e.Name())); err != nil {
			return err
		}
	}
	for _, key := range send {
		if err := c.To.Push(ctx, key, files, nil, c.Sign); err != nil {
			c.setDown(c.To)
			return err
		}
	}
	return nil
}

func (c *Registries) isDown(r *Remote) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down[r.Repo.RegistryStr()]
}

func (c *Registries) setDown(r *Remote) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		c.down = map[string]bool{}
	}
	c.down[r.Repo.RegistryStr()] = true
}
