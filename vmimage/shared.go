package vmimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
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
	// SendBase sends the base in dir under each of keys, unless it has
	// one under the first already (ErrHaveIt); ErrNotShared: it takes
	// none.
	SendBase(ctx context.Context, keys []string, dir string) error
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

// SpecKey names the base a shared cache has for spec, whichever
// packages it holds: what a machine with no base for spec takes, so that
// its appliance, and so its checkpoints' keys, are those of the machine
// that pushed, whatever the mirror has published since.
func SpecKey(spec Spec) string {
	b, _ := json.Marshal(struct {
		Format int
		Spec   Spec
	}{formatVersion, spec})
	h := sha256.Sum256(b)
	return "appliance-spec-" + hex.EncodeToString(h[:])
}

// takeSpecBase puts the shared cache's base for spec in place, if it is
// for spec and younger than SharedMaxAge.
func (c *Cache) takeSpecBase(ctx context.Context, spec Spec) error {
	return c.replaceDir(c.baseDir(spec), func(tmp string) error {
		if err := c.Shared.FetchBase(ctx, SpecKey(spec), tmp); err != nil {
			return err
		}
		got, err := c.checkBase(tmp)
		if err != nil {
			return err
		}
		if got.Spec.key() != spec.key() {
			return fmt.Errorf("its manifest is for another appliance (%s %s)", got.Spec.Arch, got.Spec.Mirror)
		}
		if age := time.Since(got.Built); c.SharedMaxAge > 0 && age > c.SharedMaxAge {
			return fmt.Errorf("it was made %s ago, longer than --checkpoint-max-age", age.Round(time.Hour))
		} else if age < -10*time.Minute {
			return fmt.Errorf("it says it was made in the future, at %s", got.Built.UTC().Format(time.RFC3339))
		}
		return nil
	})
}

// checkBase reads the manifest of the base in dir, and checks it has
// its files.
func (c *Cache) checkBase(dir string) (*Manifest, error) {
	got, err := readManifest[Manifest](manifestFile(dir))
	if err != nil {
		return nil, fmt.Errorf("its manifest: %w", err)
	}
	for _, f := range []string{"vmlinuz", "base.cpio", "keyrings"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("it lacks %s", f)
		}
	}
	return got, nil
}

// SendBase sends the cached base of spec to the shared cache, if it
// lacks it.
func (c *Cache) SendBase(ctx context.Context, spec Spec) error {
	m, err := c.baseManifest(spec)
	if err != nil {
		return err
	}
	return c.Shared.SendBase(ctx, []string{BaseKey(m), SpecKey(spec)}, c.baseDir(spec))
}

// takeBase fills dir with the shared cache's base for want, checked: its
// manifest must be want's, packages and all. What the kernel and
// userland are, only the signature the shared cache checked vouches for.
func (c *Cache) takeBase(ctx context.Context, want *Manifest, dir string) (*Manifest, error) {
	key := BaseKey(want)
	if err := c.Shared.FetchBase(ctx, key, dir); err != nil {
		return nil, err
	}
	got, err := c.checkBase(dir)
	if err != nil {
		return nil, err
	}
	if BaseKey(got) != key || got.Spec.key() != want.Spec.key() {
		return nil, fmt.Errorf("its manifest is of other packages than %s", key)
	}
	return got, nil
}
