package vmimage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/dibvm/dibvm/vmimage/initramfs"
)

// nowhere is a mirror nothing answers: a cache that went to it would fail.
const nowhere = "http://127.0.0.1:1/debian"

// cachedBase puts a base for spec in c as buildBase would leave it, with
// base.cpio holding one file.
func cachedBase(t *testing.T, c *Cache, spec Spec) *Manifest {
	t.Helper()
	m := &Manifest{Spec: spec, Kernel: PackageRef{Name: "linux-image-" + spec.Arch, SHA256: "k-" + spec.Arch}, Packages: []PackageRef{{Name: "bash", SHA256: "bb"}}}
	tree := initramfs.NewTree()
	tree.WriteFile("etc/hostname", []byte("dibvm\n"), 0o644)
	tree.WriteFile("usr/share/keyrings/debian-archive-keyring.gpg", []byte("keys"), 0o644)
	tree.WriteFile("usr/share/keyrings/README", []byte("not a keyring"), 0o644)
	err := c.replaceDir(c.baseDir(spec), func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "vmlinuz"), []byte("kernel"), 0o644); err != nil {
			return err
		}
		if err := writeCPIO(filepath.Join(tmp, "base.cpio"), tree); err != nil {
			return err
		}
		if err := writeKeyrings(filepath.Join(tmp, "keyrings"), tree); err != nil {
			return err
		}
		return writeJSON(filepath.Join(tmp, "manifest.json"), m)
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testSpec(arch string) Spec {
	return Spec{Mirror: nowhere, Suite: "stable", Arch: arch, Modules: []string{"ext4"}}
}

func TestLookupEmptyCache(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	if _, err := c.Lookup(testSpec("amd64"), NewAgent([]byte("agent"))); !errors.Is(err, ErrNotCached) {
		t.Errorf("Lookup in an empty cache: %v, want ErrNotCached", err)
	}
	// A base without the agent's appliance is not an appliance yet.
	cachedBase(t, c, testSpec("amd64"))
	if _, err := c.Lookup(testSpec("amd64"), NewAgent([]byte("agent"))); !errors.Is(err, ErrNotCached) {
		t.Errorf("Lookup with the base alone: %v, want ErrNotCached", err)
	}
}

func TestLookupDamagedManifest(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	spec := testSpec("amd64")
	if err := os.MkdirAll(c.baseDir(spec), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.baseDir(spec), "manifest.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(spec, NewAgent(nil)); err == nil || errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "read appliance manifest") {
		t.Errorf("Lookup with a damaged manifest: %v", err)
	}
}

// TestEnsureFromCache: with the base cached, Ensure adds the agent to it
// and finds it again, all without the mirror (which does not answer).
func TestEnsureFromCache(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	spec := testSpec("amd64")
	m := cachedBase(t, c, spec)
	agent := NewAgent([]byte("the agent binary"))
	a, err := c.Ensure(context.Background(), spec, agent)
	if err != nil {
		t.Fatal(err)
	}
	base := c.baseDir(spec)
	if a.Kernel != filepath.Join(base, "vmlinuz") || a.Keyrings != filepath.Join(base, "keyrings") || a.Manifest.Digest() != m.Digest() {
		t.Errorf("appliance %+v", a)
	}
	if want := filepath.Join(c.Dir, "appliance", m.Digest()+"-"+agent.Digest[:16], "initrd.img"); a.Initrd != want {
		t.Errorf("initrd %s, want %s", a.Initrd, want)
	}
	// The initrd is the base cpio, then one holding the agent as /init.
	initrd, err := os.ReadFile(a.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	baseCPIO, _ := os.ReadFile(filepath.Join(base, "base.cpio"))
	if !bytes.HasPrefix(initrd, baseCPIO) {
		t.Fatal("the initrd does not start with the base cpio")
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(initrd[len(baseCPIO):])))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	if !slices.Contains(names, "init") {
		t.Errorf("the agent's cpio holds %q, no init", names)
	}
	keyrings, _ := os.ReadDir(a.Keyrings)
	if len(keyrings) != 1 || keyrings[0].Name() != "debian-archive-keyring.gpg" {
		t.Errorf("keyrings: %v, want the .gpg file alone", keyrings)
	}
	if b, err := c.Build(context.Background(), spec, agent, false); err != nil || b.Initrd != a.Initrd {
		t.Errorf("Build of what is cached: %v, %v", b, err)
	}
	// Another agent is another appliance on the same base.
	other, err := c.Ensure(context.Background(), spec, NewAgent([]byte("another agent")))
	if err != nil || other.Initrd == a.Initrd || other.Kernel != a.Kernel {
		t.Errorf("another agent: %+v, %v", other, err)
	}
}

// Without a base, Ensure goes to the mirror, and says so when it cannot.
func TestEnsureNeedsTheMirror(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	if _, err := c.Ensure(context.Background(), testSpec("amd64"), NewAgent(nil)); err == nil {
		t.Error("Ensure with nothing cached and no mirror: no error")
	}
}

// TestUnused: what no spec and agent of the list would use, built or left
// by a refresh; never a build under way.
func TestUnused(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	amd, arm := testSpec("amd64"), testSpec("arm64")
	agent := NewAgent([]byte("agent"))
	for _, s := range []Spec{amd, arm} {
		cachedBase(t, c, s)
		if _, err := c.Ensure(context.Background(), s, agent); err != nil {
			t.Fatal(err)
		}
	}
	old, err := c.Ensure(context.Background(), amd, NewAgent([]byte("an older agent")))
	if err != nil {
		t.Fatal(err)
	}
	building := filepath.Join(c.Dir, "base", ".build-123")
	if err := os.MkdirAll(building, 0o755); err != nil {
		t.Fatal(err)
	}
	got := c.Unused([]Spec{amd}, []Agent{agent})
	want := []string{filepath.Dir(old.Initrd), c.baseDir(arm)}
	armAppliance, _ := c.Lookup(arm, agent)
	want = append(want, filepath.Dir(armAppliance.Initrd))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Unused = %q, want %q", got, want)
	}
	if got := c.Unused([]Spec{amd, arm}, []Agent{agent, agent}); len(got) != 1 || got[0] != filepath.Dir(old.Initrd) {
		t.Errorf("Unused of both specs = %q, want the older agent's appliance alone", got)
	}
}

// TestReplaceDir: the new content replaces the old whole, and a fill that
// fails leaves the old in place and nothing beside it.
func TestReplaceDir(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	dir := filepath.Join(c.Dir, "base", "k")
	write := func(name string) func(string) error {
		return func(tmp string) error { return os.WriteFile(filepath.Join(tmp, name), nil, 0o644) }
	}
	if err := c.replaceDir(dir, write("a")); err != nil {
		t.Fatal(err)
	}
	if err := c.replaceDir(dir, write("b")); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("fill failed")
	if err := c.replaceDir(dir, func(tmp string) error { write("c")(tmp); return failed }); !errors.Is(err, failed) {
		t.Errorf("a failed fill: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "b" {
		t.Errorf("%s holds %v, want b alone", dir, entries)
	}
	if siblings, _ := os.ReadDir(filepath.Dir(dir)); len(siblings) != 1 {
		t.Errorf("left beside it: %v", siblings)
	}
}

// cachedLayer puts l over the base m in c as buildLayer would leave it,
// with layer.cpio holding one file.
func cachedLayer(t *testing.T, c *Cache, spec Spec, l Layer, base string) *LayerManifest {
	t.Helper()
	m := &LayerManifest{Layer: l, Base: base, Packages: []PackageRef{{Name: "rpm", SHA256: "rr"}}}
	tree := initramfs.NewTree()
	tree.WriteFile("usr/bin/rpm", []byte("rpm"), 0o755)
	err := c.replaceDir(c.layerDir(spec, l), func(tmp string) error {
		if err := writeCPIO(layerCPIO(tmp), tree); err != nil {
			return err
		}
		return writeJSON(manifestFile(tmp), m)
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// cpioNames reads one newc archive and returns its names.
func cpioNames(t *testing.T, what string, data []byte) []string {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatalf("%s is not a cpio archive: %v", what, err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	return names
}

// TestEnsureWithLayer: with the base and a layer cached, Ensure makes
// their concatenation with the agent's archive last, each a whole cpio
// archive, without the mirror.
func TestEnsureWithLayer(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	spec := testSpec("amd64")
	m := cachedBase(t, c, spec)
	lm := cachedLayer(t, c, spec, rpmLayer, m.Digest())
	agent := NewAgent([]byte("the agent binary"))
	a, err := c.Ensure(context.Background(), spec, agent, rpmLayer, rpmLayer)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Layers) != 1 || a.Layers[0].Digest() != lm.Digest() {
		t.Errorf("layers %+v, want the rpm layer once", a.Layers)
	}
	if want := m.Digest() + "-" + agent.Digest[:16] + "+rpm-" + lm.Digest(); filepath.Base(filepath.Dir(a.Initrd)) != want {
		t.Errorf("initrd %s, want it in appliance/%s", a.Initrd, want)
	}
	initrd, _ := os.ReadFile(a.Initrd)
	baseCPIO, _ := os.ReadFile(filepath.Join(c.baseDir(spec), "base.cpio"))
	layer, _ := os.ReadFile(layerCPIO(c.layerDir(spec, rpmLayer)))
	if !bytes.HasPrefix(initrd, append(slices.Clone(baseCPIO), layer...)) {
		t.Fatal("the initrd is not the base cpio, then the layer's")
	}
	if names := cpioNames(t, "the base's part", baseCPIO); !slices.Contains(names, "etc/hostname") {
		t.Errorf("the base's part holds %q", names)
	}
	if names := cpioNames(t, "the layer's part", initrd[len(baseCPIO):len(baseCPIO)+len(layer)]); !slices.Contains(names, "usr/bin/rpm") {
		t.Errorf("the layer's part holds %q", names)
	}
	if names := cpioNames(t, "the agent's part", initrd[len(baseCPIO)+len(layer):]); !slices.Contains(names, "init") {
		t.Errorf("the agent's part holds %q", names)
	}
	// Without the layer, the same base and agent make another appliance.
	plain, err := c.Ensure(context.Background(), spec, agent)
	if err != nil || plain.Initrd == a.Initrd || plain.Layers != nil || plain.Kernel != a.Kernel {
		t.Errorf("without the layer: %+v, %v", plain, err)
	}
	if fileLen(t, a.Initrd) != fileLen(t, plain.Initrd)+int64(len(layer)) {
		t.Errorf("the layered initrd is %d bytes, want the plain one's %d and the layer's %d", fileLen(t, a.Initrd), fileLen(t, plain.Initrd), len(layer))
	}
}

func fileLen(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A layer resolved onto another base holds what that base lacked: it is
// not used, and rebuilding it needs the mirror.
func TestLayerOntoAnotherBase(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	spec := testSpec("amd64")
	cachedBase(t, c, spec)
	cachedLayer(t, c, spec, rpmLayer, "an older base")
	agent := NewAgent([]byte("agent"))
	if _, err := c.Lookup(spec, agent, rpmLayer); !errors.Is(err, ErrNotCached) {
		t.Errorf("Lookup with a stale layer: %v, want ErrNotCached", err)
	}
	if _, err := c.Ensure(context.Background(), spec, agent, rpmLayer); err == nil {
		t.Error("Ensure with a stale layer and no mirror: no error")
	}
	if _, err := c.Ensure(context.Background(), spec, agent); err != nil {
		t.Errorf("the base alone still serves: %v", err)
	}
}

// TestUnusedKeepsLayers: the layers of current specs and the appliances
// made with them are kept; those of other specs are not.
func TestUnusedKeepsLayers(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	amd, arm := testSpec("amd64"), testSpec("arm64")
	agent := NewAgent([]byte("agent"))
	for _, s := range []Spec{amd, arm} {
		m := cachedBase(t, c, s)
		cachedLayer(t, c, s, rpmLayer, m.Digest())
		if _, err := c.Ensure(context.Background(), s, agent, rpmLayer); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Unused([]Spec{amd, arm}, []Agent{agent, agent}); len(got) != 0 {
		t.Errorf("Unused = %q, want nothing", got)
	}
	got := c.Unused([]Spec{amd}, []Agent{agent})
	armLayered, _ := c.Lookup(arm, agent, rpmLayer)
	want := []string{c.baseDir(arm), c.layerDir(arm, rpmLayer), filepath.Dir(armLayered.Initrd)}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Unused = %q, want %q", got, want)
	}
}
