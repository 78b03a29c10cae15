package vmimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Shared is a cache of appliance bases beyond this machine's (a
// registry): a base the cache lacks is taken from it under the key this
// build computed from the mirror's signed index (BaseKey), and a base
// built here is sent there. Its errors are notices: the base is built
// here instead.
type Shared interface {
	// FetchBase brings the files of the base of key into dir, as
	// buildBase writes them; ErrNotShared: it has none.
	FetchBase(ctx context.Context, key, dir string) error
	// SendBase sends the base in dir under key; ErrNotShared: it takes
	// none; ErrHaveIt: it has it already.
	SendBase(ctx context.Context, key, dir string) error
}

// ErrNotShared is a base the shared cache does not have, or a shared
// cache that takes none.
var ErrNotShared = errors.New("not in the shared cache")

// ErrHaveIt is a base the shared cache has already.
var ErrHaveIt = errors.New("the shared cache has it")

// BaseKey names the base of m wherever it is shared: the whole digest of
// the exact packages in it (Digest is its first 8 bytes), for the
// architecture.
func BaseKey(m *Manifest) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%s %s %s\n", formatVersion, m.Spec.Arch, m.Kernel.Name, m.Kernel.SHA256)
	for _, p := range m.Packages {
		fmt.Fprintf(h, "%s %s\n", p.Name, p.SHA256)
	}
	fmt.Fprintf(h, "%q %q\n", m.Spec.Modules, m.Spec.BootModules)
	return "appliance-base-" + hex.EncodeToString(h.Sum(nil))
}

// takeBase fills dir with the shared cache's base for want, checked: its
// manifest must be want's, packages and all. What the kernel and
// userland are, only the signature the shared cache checked vouches for.
func (c *Cache) takeBase(ctx context.Context, want *Manifest, dir string) (*Manifest, error) {
	key := BaseKey(want)
	if err := c.Shared.FetchBase(ctx, key, dir); err != nil {
		return nil, err
	}
	got, err := readManifest[Manifest](manifestFile(dir))
	if err != nil {
		return nil, fmt.Errorf("its manifest: %w", err)
	}
	if BaseKey(got) != key || got.Spec.Arch != want.Spec.Arch {
		return nil, fmt.Errorf("its manifest is of other packages than %s", key)
	}
	for _, f := range []string{"vmlinuz", "base.cpio", "keyrings"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("it lacks %s", f)
		}
	}
	return got, nil
}
