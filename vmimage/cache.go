package vmimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/gofrs/flock"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/vmimage/debrepo"
	"github.com/dibvm/dibvm/vmimage/initramfs"
)

// Agent is the guest agent binary and its SHA256, which names the
// appliance built with it.
type Agent struct {
	Binary []byte
	Digest string // hex SHA256 of Binary
}

// NewAgent hashes binary.
func NewAgent(binary []byte) Agent {
	h := sha256.Sum256(binary)
	return Agent{Binary: binary, Digest: hex.EncodeToString(h[:])}
}

// Appliance is a bootable helper: a kernel and an initramfs.
type Appliance struct {
	Kernel string // path of the kernel image
	Initrd string // path of the initramfs
	// Keyrings is a directory of the OpenPGP keyrings the appliance has in
	// /usr/share/keyrings, for the host to check what the guest will:
	// they came with their packages, verified against Debian's archive.
	Keyrings string
	Manifest *Manifest
	// Layers are the tool layers in Initrd beside the base, by name:
	// none unless they were asked for.
	Layers []*LayerManifest
}

// ErrNotCached means the cache holds no appliance for a spec and agent.
var ErrNotCached = errors.New("no appliance in the cache")

// Cache is the on-disk appliance cache.
//
// Layout:
//
//	debs/<sha256>-<file>.deb    verified downloads, shared by all specs
//	base/<spec key>/            kernel, userland cpio, manifest and keyrings/ of one spec
//	layer/<layer key>/          one tool layer's cpio and manifest, over one spec's base
//	appliance/<base>-<agent>/   the base plus one agent build, ready to boot
//	appliance/<base>-<agent>+<layer>-<digest>.../
//	                            the same with tool layers between the two
//	locks/                      one lock file per spec key
//
// QEMU's -initrd and libvirt's <initrd> take one file, and the kernel
// unpacks concatenated cpio archives in order, later files replacing
// earlier ones: so each set of layers is its own concatenation, and the
// agent's archive comes last. Entries are built beside their final place
// and renamed into it, so a reader never sees half of one; builders of
// the same spec take its lock.
type Cache struct {
	Dir    string // the cache's directory: the caller chooses it
	Client *http.Client
	// Keyring checks the mirror's InRelease; nil is Debian's archive
	// keys, which dibvm carries.
	Keyring openpgp.KeyRing
	// Log receives one line per build step; nil discards them.
	Log io.Writer
	// Shared, when set, is where a base the cache lacks is looked for
	// before it is built, and where one built here is sent. A base for
	// the spec is taken from it only if younger than SharedMaxAge (0:
	// any).
	Shared       Shared
	SharedMaxAge time.Duration
}

// Lookup finds the cached appliance for spec and agent, with layers,
// without touching the network.
func (c *Cache) Lookup(spec Spec, agent Agent, layers ...Layer) (*Appliance, error) {
	m, lms, err := c.parts(spec, layers)
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(c.applianceDir(m, agent, lms), "initrd.img")
	if _, err := os.Stat(initrd); err != nil {
		return nil, ErrNotCached
	}
	base := c.baseDir(spec)
	return &Appliance{Kernel: filepath.Join(base, "vmlinuz"), Initrd: initrd, Keyrings: filepath.Join(base, "keyrings"), Manifest: m, Layers: lms}, nil
}

// Ensure returns the cached appliance, building what is missing. With a
// shared cache that takes bases, a cached base is sent there if it lacks
// it.
func (c *Cache) Ensure(ctx context.Context, spec Spec, agent Agent, layers ...Layer) (*Appliance, error) {
	if a, err := c.Lookup(spec, agent, layers...); err == nil {
		if c.Shared != nil {
			c.sendBase(ctx, spec)
		}
		return a, nil
	}
	return c.Build(ctx, spec, agent, false, layers...)
}

// sendBase sends the base of spec to the shared cache, and says so.
func (c *Cache) sendBase(ctx context.Context, spec Spec) {
	switch err := c.SendBase(ctx, spec); {
	case err == nil:
		c.logf("appliance: base sent to the shared cache")
	case errors.Is(err, ErrHaveIt):
	case !errors.Is(err, ErrNotShared):
		c.logf("appliance: the shared cache: base not sent: %v", err)
	}
}

// Build makes the appliance for spec and agent, with layers. With
// refresh, it asks the mirror for newer packages even when the base and
// layers are cached.
func (c *Cache) Build(ctx context.Context, spec Spec, agent Agent, refresh bool, layers ...Layer) (*Appliance, error) {
	if err := os.MkdirAll(filepath.Join(c.Dir, "locks"), 0o755); err != nil {
		return nil, err
	}
	lock := flock.New(filepath.Join(c.Dir, "locks", spec.key()+".lock"))
	if err := lock.Lock(); err != nil {
		return nil, fmt.Errorf("lock the appliance cache: %w", err)
	}
	defer lock.Unlock()

	// Another dibvm may have finished the same build while we waited.
	if !refresh {
		if a, err := c.Lookup(spec, agent, layers...); err == nil {
			return a, nil
		}
	}
	m, lms, err := c.parts(spec, layers)
	if _, berr := c.baseManifest(spec); berr != nil && !refresh && c.Shared != nil {
		// No base at all: the shared cache's for the spec, as it is.
		switch err := c.takeSpecBase(ctx, spec); {
		case err == nil:
			c.logf("appliance: base taken from the shared cache")
		case !errors.Is(err, ErrNotShared):
			c.logf("appliance: the shared cache's base: %v; building it here", err)
		}
		m, lms, err = c.parts(spec, layers)
	}
	if err != nil || refresh {
		if m, lms, err = c.buildParts(ctx, spec, layers); err != nil {
			return nil, err
		}
	}
	if err := c.buildAppliance(spec, m, agent, lms); err != nil {
		return nil, err
	}
	return c.Lookup(spec, agent, layers...)
}

func (c *Cache) baseDir(spec Spec) string { return filepath.Join(c.Dir, "base", spec.key()) }

func (c *Cache) layerDir(spec Spec, l Layer) string {
	return filepath.Join(c.Dir, "layer", l.key(spec))
}

// applianceDir names the concatenation of the base m, the layers lms and
// agent: each part by the digest of what is in it.
func (c *Cache) applianceDir(m *Manifest, agent Agent, lms []*LayerManifest) string {
	name := m.Digest() + "-" + agent.Digest[:16]
	for _, lm := range lms {
		name += "+" + lm.Layer.Name + "-" + lm.Digest()
	}
	return filepath.Join(c.Dir, "appliance", name)
}

func manifestFile(dir string) string { return filepath.Join(dir, "manifest.json") }
func layerCPIO(dir string) string    { return filepath.Join(dir, "layer.cpio") }

func (c *Cache) baseManifest(spec Spec) (*Manifest, error) {
	return readManifest[Manifest](manifestFile(c.baseDir(spec)))
}

func (c *Cache) layerManifest(spec Spec, l Layer) (*LayerManifest, error) {
	return readManifest[LayerManifest](manifestFile(c.layerDir(spec, l)))
}

func readManifest[M any](name string) (*M, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotCached
	}
	if err != nil {
		return nil, err
	}
	var m M
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read appliance manifest %s: %w", name, err)
	}
	return &m, nil
}

// parts are the cached manifests of spec's base and of layers over it,
// sorted by name: ErrNotCached when one is missing, or a layer was
// resolved onto another base (it holds what that base lacked).
func (c *Cache) parts(spec Spec, layers []Layer) (*Manifest, []*LayerManifest, error) {
	m, err := c.baseManifest(spec)
	if err != nil {
		return nil, nil, err
	}
	var lms []*LayerManifest
	for _, l := range sortedLayers(layers) {
		lm, err := c.layerManifest(spec, l)
		if err != nil {
			return nil, nil, err
		}
		if lm.Base != m.Digest() {
			return nil, nil, ErrNotCached
		}
		lms = append(lms, lm)
	}
	return m, lms, nil
}

// buildParts reads the mirror's index once and builds the base and each
// layer over it, where what the mirror serves has changed.
func (c *Cache) buildParts(ctx context.Context, spec Spec, layers []Layer) (*Manifest, []*LayerManifest, error) {
	keyring := c.Keyring
	if keyring == nil {
		ring, err := debrepo.DebianKeyring()
		if err != nil {
			return nil, nil, err
		}
		keyring = ring
	}
	repo := &debrepo.Repo{
		Mirror: spec.Mirror, Suite: spec.Suite, Component: "main", Arch: spec.Arch,
		Keyring: keyring, Client: c.Client, CacheDir: filepath.Join(c.Dir, "debs"),
	}
	c.logf("appliance: reading %s %s/%s", spec.Mirror, spec.Suite, spec.Arch)
	src, err := openSource(ctx, repo)
	if err != nil {
		return nil, nil, err
	}
	pl, err := resolve(src, spec)
	if err != nil {
		return nil, nil, err
	}
	m, err := c.buildBase(ctx, src, pl)
	if err != nil {
		return nil, nil, err
	}
	var lms []*LayerManifest
	for _, l := range sortedLayers(layers) {
		lm, err := c.buildLayer(ctx, src, pl, l)
		if err != nil {
			return nil, nil, err
		}
		lms = append(lms, lm)
	}
	return m, lms, nil
}

// sortedLayers is layers by name, each once: the order the archives are
// concatenated in, whatever order they were asked for in.
func sortedLayers(layers []Layer) []Layer {
	out := slices.Clone(layers)
	slices.SortFunc(out, func(a, b Layer) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b Layer) bool { return a.Name == b.Name })
}

func (c *Cache) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// buildBase downloads and unpacks the packages of pl into base/<key>/,
// unless they are those already there.
func (c *Cache) buildBase(ctx context.Context, src *source, pl *plan) (*Manifest, error) {
	start := time.Now()
	spec := pl.manifest.Spec
	if old, err := c.baseManifest(spec); err == nil && old.Digest() == pl.manifest.Digest() {
		c.logf("appliance: packages unchanged")
		return old, nil
	}
	if c.Shared != nil {
		var got *Manifest
		err := c.replaceDir(c.baseDir(spec), func(tmp string) (err error) {
			got, err = c.takeBase(ctx, pl.manifest, tmp)
			return err
		})
		switch {
		case err == nil:
			c.logf("appliance: base taken from the shared cache in %s", time.Since(start).Round(time.Millisecond))
			return got, nil
		case !errors.Is(err, ErrNotShared):
			c.logf("appliance: the shared cache's base: %v; building it here", err)
		}
	}
	c.logf("appliance: downloading %d packages and %s", len(pl.userland), pl.kernel.Name)
	files, err := pl.download(ctx, src.repo)
	if err != nil {
		return nil, err
	}
	c.logf("appliance: unpacking")
	tree, k, err := pl.assemble(files)
	if err != nil {
		return nil, err
	}
	pl.manifest.Built = time.Now().UTC()
	pl.manifest.BuildTime = time.Since(start)
	err = c.replaceDir(c.baseDir(spec), func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "vmlinuz"), k.Image, 0o644); err != nil {
			return err
		}
		if err := writeCPIO(filepath.Join(tmp, "base.cpio"), tree); err != nil {
			return err
		}
		if err := writeKeyrings(filepath.Join(tmp, "keyrings"), tree); err != nil {
			return err
		}
		return writeJSON(manifestFile(tmp), pl.manifest)
	})
	if err != nil {
		return nil, fmt.Errorf("write the appliance base: %w", err)
	}
	c.logf("appliance: base ready (kernel %s, %d packages, %d MiB) in %s",
		k.Version, len(pl.userland), tree.Size()>>20, time.Since(start).Round(time.Millisecond))
	if c.Shared != nil {
		c.sendBase(ctx, spec)
	}
	return pl.manifest, nil
}

// buildAppliance concatenates the base cpio, the layers' and one holding
// the agent as /init. The kernel unpacks concatenated cpio archives in
// order, so the base and layers are reused as they are.
func (c *Cache) buildAppliance(spec Spec, m *Manifest, agent Agent, lms []*LayerManifest) error {
	dir := c.applianceDir(m, agent, lms)
	if _, err := os.Stat(filepath.Join(dir, "initrd.img")); err == nil {
		return nil
	}
	parts := []string{filepath.Join(c.baseDir(spec), "base.cpio")}
	for _, lm := range lms {
		parts = append(parts, layerCPIO(c.layerDir(spec, lm.Layer)))
	}
	return c.replaceDir(dir, func(tmp string) error {
		out, err := os.Create(filepath.Join(tmp, "initrd.img"))
		if err != nil {
			return err
		}
		defer out.Close()
		for _, p := range parts {
			if err := appendFile(out, p); err != nil {
				return err
			}
		}
		t := initramfs.NewTree()
		t.WriteFile(strings.TrimPrefix(api.AgentPath, "/"), agent.Binary, 0o755)
		if err := t.WriteCPIO(out); err != nil {
			return err
		}
		return out.Close()
	})
}

func appendFile(w io.Writer, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// replaceDir fills a new directory with fill and renames it to dir,
// replacing any old one.
func (c *Cache) replaceDir(dir string, fill func(tmp string) error) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return err
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

func writeCPIO(name string, t *initramfs.Tree) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := t.WriteCPIO(f); err != nil {
		return err
	}
	return f.Close()
}

// writeKeyrings copies the tree's /usr/share/keyrings/*.gpg to dir.
func writeKeyrings(dir string, t *initramfs.Tree) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var err error
	t.Walk("usr/share/keyrings", func(name string, n *initramfs.Node) {
		if err == nil && n.Mode.IsRegular() && filepath.Ext(name) == ".gpg" {
			err = os.WriteFile(filepath.Join(dir, filepath.Base(name)), n.Data, 0o644)
		}
	})
	return err
}

func writeJSON(name string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(name, buf.Bytes(), 0o644)
}

// Unused are the directories of appliances, bases and layers in the
// cache that no Lookup of specs[i] with agents[i], with any set of the
// layers dibvm has, would use: left by other dibvm builds (another
// agent), by a refresh from the mirror (another base or layer), or by
// other mirrors and suites. Those a build is making are not listed.
func (c *Cache) Unused(specs []Spec, agents []Agent) []string {
	keep := map[string]bool{}
	for i, spec := range specs {
		keep[c.baseDir(spec)] = true
		var lms []*LayerManifest
		for _, l := range layers {
			keep[c.layerDir(spec, l)] = true
			if _, ms, err := c.parts(spec, []Layer{l}); err == nil {
				lms = append(lms, ms...)
			}
		}
		if m, err := c.baseManifest(spec); err == nil {
			for _, set := range subsets(lms) {
				keep[c.applianceDir(m, agents[i], set)] = true
			}
		}
	}
	var out []string
	for _, kind := range []string{"appliance", "base", "layer"} {
		entries, _ := os.ReadDir(filepath.Join(c.Dir, kind))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue // a build under way, or its leftovers
			}
			if dir := filepath.Join(c.Dir, kind, e.Name()); e.IsDir() && !keep[dir] {
				out = append(out, dir)
			}
		}
	}
	return out
}

// subsets are all the sets of lms, each in lms's order, the empty one
// first.
func subsets[T any](lms []T) [][]T {
	out := [][]T{nil}
	for _, x := range lms {
		for _, s := range out {
			out = append(out, append(slices.Clone(s), x))
		}
	}
	return out
}
