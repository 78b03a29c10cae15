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
	"strings"
	"time"

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
}

// ErrNotCached means the cache holds no appliance for a spec and agent.
var ErrNotCached = errors.New("no appliance in the cache")

// Cache is the on-disk appliance cache.
//
// Layout:
//
//	debs/<sha256>-<file>.deb    verified downloads, shared by all specs
//	base/<spec key>/            kernel, userland cpio, manifest and keyrings/ of one spec
//	appliance/<base>-<agent>/   the base plus one agent build, ready to boot
//	locks/                      one lock file per spec key
//
// Entries are built beside their final place and renamed into it, so a
// reader never sees half of one; builders of the same spec take its lock.
type Cache struct {
	Dir    string // the cache's directory: the caller chooses it
	Client *http.Client
	// Log receives one line per build step; nil discards them.
	Log io.Writer
}

// Lookup finds the cached appliance for spec and agent without touching
// the network.
func (c *Cache) Lookup(spec Spec, agent Agent) (*Appliance, error) {
	m, err := c.baseManifest(spec)
	if err != nil {
		return nil, err
	}
	dir := c.applianceDir(m, agent)
	initrd := filepath.Join(dir, "initrd.img")
	if _, err := os.Stat(initrd); err != nil {
		return nil, ErrNotCached
	}
	base := c.baseDir(spec)
	return &Appliance{Kernel: filepath.Join(base, "vmlinuz"), Initrd: initrd, Keyrings: filepath.Join(base, "keyrings"), Manifest: m}, nil
}

// Ensure returns the cached appliance, building what is missing.
func (c *Cache) Ensure(ctx context.Context, spec Spec, agent Agent) (*Appliance, error) {
	if a, err := c.Lookup(spec, agent); err == nil {
		return a, nil
	}
	return c.Build(ctx, spec, agent, false)
}

// Build makes the appliance for spec and agent. With refresh, it asks the
// mirror for newer packages even when a base image is cached.
func (c *Cache) Build(ctx context.Context, spec Spec, agent Agent, refresh bool) (*Appliance, error) {
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
		if a, err := c.Lookup(spec, agent); err == nil {
			return a, nil
		}
	}
	m, err := c.baseManifest(spec)
	if err != nil || refresh {
		if m, err = c.buildBase(ctx, spec); err != nil {
			return nil, err
		}
	}
	if err := c.buildAppliance(spec, m, agent); err != nil {
		return nil, err
	}
	return c.Lookup(spec, agent)
}

func (c *Cache) baseDir(spec Spec) string { return filepath.Join(c.Dir, "base", spec.key()) }

func (c *Cache) applianceDir(m *Manifest, agent Agent) string {
	return filepath.Join(c.Dir, "appliance", m.Digest()+"-"+agent.Digest[:16])
}

func (c *Cache) baseManifest(spec Spec) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(c.baseDir(spec), "manifest.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotCached
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read appliance manifest: %w", err)
	}
	return &m, nil
}

func (c *Cache) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// buildBase resolves, downloads and unpacks the spec's packages into
// base/<key>/, unless the packages the mirror serves are those already
// there.
func (c *Cache) buildBase(ctx context.Context, spec Spec) (*Manifest, error) {
	start := time.Now()
	keyring, err := debrepo.DebianKeyring()
	if err != nil {
		return nil, err
	}
	repo := &debrepo.Repo{
		Mirror: spec.Mirror, Suite: spec.Suite, Component: "main", Arch: spec.Arch,
		Keyring: keyring, Client: c.Client, CacheDir: filepath.Join(c.Dir, "debs"),
	}
	c.logf("appliance: reading %s %s/%s", spec.Mirror, spec.Suite, spec.Arch)
	pl, err := resolve(ctx, repo, spec)
	if err != nil {
		return nil, err
	}
	if old, err := c.baseManifest(spec); err == nil && old.Digest() == pl.manifest.Digest() {
		c.logf("appliance: packages unchanged")
		return old, nil
	}
	c.logf("appliance: downloading %d packages and %s", len(pl.userland), pl.kernel.Name)
	files, err := pl.download(ctx, repo)
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
		return writeJSON(filepath.Join(tmp, "manifest.json"), pl.manifest)
	})
	if err != nil {
		return nil, fmt.Errorf("write the appliance base: %w", err)
	}
	c.logf("appliance: base ready (kernel %s, %d packages, %d MiB) in %s",
		k.Version, len(pl.userland), tree.Size()>>20, time.Since(start).Round(time.Millisecond))
	return pl.manifest, nil
}

// buildAppliance appends the agent, as /init, to the base cpio. The kernel
// unpacks concatenated cpio archives in order, so the base is reused as is.
func (c *Cache) buildAppliance(spec Spec, m *Manifest, agent Agent) error {
	dir := c.applianceDir(m, agent)
	if _, err := os.Stat(filepath.Join(dir, "initrd.img")); err == nil {
		return nil
	}
	return c.replaceDir(dir, func(tmp string) error {
		out, err := os.Create(filepath.Join(tmp, "initrd.img"))
		if err != nil {
			return err
		}
		defer out.Close()
		base, err := os.Open(filepath.Join(c.baseDir(spec), "base.cpio"))
		if err != nil {
			return err
		}
		defer base.Close()
		if _, err := io.Copy(out, base); err != nil {
			return err
		}
		t := initramfs.NewTree()
		t.WriteFile(strings.TrimPrefix(api.AgentPath, "/"), agent.Binary, 0o755)
		if err := t.WriteCPIO(out); err != nil {
			return err
		}
		return out.Close()
	})
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

// Unused are the directories of appliances and bases in the cache that
// no Lookup of specs[i] with agents[i] would use: left by other dibvm
// builds (another agent), by a refresh from the mirror (another base),
// or by other mirrors and suites. Those a build is making are not listed.
func (c *Cache) Unused(specs []Spec, agents []Agent) []string {
	keep := map[string]bool{}
	for i, spec := range specs {
		keep[c.baseDir(spec)] = true
		if m, err := c.baseManifest(spec); err == nil {
			keep[c.applianceDir(m, agents[i])] = true
		}
	}
	var out []string
	for _, kind := range []string{"appliance", "base"} {
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
