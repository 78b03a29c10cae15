package vmimage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// TestBuildLayerFromMirror: from a signed mirror on the loopback, a layer
// asked for after the base is built without building the base again,
// holds what its packages add to the base less its without list and the
// base's own files, is found again without the mirror, and is rebuilt
// when the mirror's packages change.
func TestBuildLayerFromMirror(t *testing.T) {
	m := newStandInMirror(t)
	m.publish(t, standInDistribution("4.20.1"))
	c := &Cache{Dir: t.TempDir(), Keyring: openpgp.EntityList{m.signer}}
	spec := Spec{Mirror: m.url(), Suite: "stable", Arch: "amd64", Packages: []string{"bash"}, Without: []string{"perl"}}
	rpm := Layer{Name: "rpm", Packages: []string{"rpm"}, Without: []string{"perl"}}
	agent := NewAgent([]byte("agent"))
	ctx := context.Background()

	plain, err := c.Ensure(ctx, spec, agent)
	if err != nil {
		t.Fatal(err)
	}
	layered, err := c.Ensure(ctx, spec, agent, rpm)
	if err != nil {
		t.Fatal(err)
	}
	if n := m.downloads("pool/main/bash_5.2_amd64.deb"); n != 1 {
		t.Errorf("bash was downloaded %d times: the base was built again for the layer", n)
	}
	if layered.Manifest.Digest() != plain.Manifest.Digest() || layered.Kernel != plain.Kernel {
		t.Error("the layered appliance has another base")
	}
	if len(layered.Layers) != 1 || !slices.Equal(refNames(layered.Layers[0].Packages), []string{"librpm10", "rpm"}) {
		t.Fatalf("layers %+v, want rpm with librpm10 and rpm", layered.Layers)
	}
	checkParts(t, c, spec, layered)

	// Cached: no request to the mirror.
	before := m.requests()
	if again, err := c.Ensure(ctx, spec, agent, rpm); err != nil || again.Initrd != layered.Initrd {
		t.Errorf("Ensure of the cached layer: %v, %v", again, err)
	}
	if m.requests() != before {
		t.Error("Ensure of a cached layer went to the mirror")
	}

	// The mirror moves on: a refresh rebuilds the layer alone.
	m.publish(t, standInDistribution("4.20.2"))
	refreshed, err := c.Build(ctx, spec, agent, true, rpm)
	if err != nil {
		t.Fatal(err)
	}
	if refreshed.Manifest.Digest() != plain.Manifest.Digest() || m.downloads("pool/main/bash_5.2_amd64.deb") != 1 {
		t.Errorf("the base changed (%s, was %s), or was downloaded again (%d), with only rpm new on the mirror",
			refreshed.Manifest.Digest(), plain.Manifest.Digest(), m.downloads("pool/main/bash_5.2_amd64.deb"))
	}
	if refreshed.Layers[0].Digest() == layered.Layers[0].Digest() || refreshed.Initrd == layered.Initrd {
		t.Error("the refreshed layer is the old one")
	}
	if unused := c.Unused([]Spec{spec}, []Agent{agent}); !slices.Contains(unused, filepath.Dir(layered.Initrd)) {
		t.Errorf("Unused %q does not list the appliance with the old layer", unused)
	}
}

// checkParts reads a's initrd as the base's archive, the layer's and the
// agent's, and checks what each holds.
func checkParts(t *testing.T, c *Cache, spec Spec, a *Appliance) {
	t.Helper()
	initrd, _ := os.ReadFile(a.Initrd)
	base, _ := os.ReadFile(filepath.Join(c.baseDir(spec), "base.cpio"))
	layer, _ := os.ReadFile(layerCPIO(c.layerDir(spec, a.Layers[0].Layer)))
	if !bytes.HasPrefix(initrd, append(slices.Clone(base), layer...)) {
		t.Fatal("the initrd is not the base's archive, then the layer's")
	}
	baseNames := cpioNames(t, "the base", base)
	layerNames := cpioNames(t, "the layer", layer)
	for _, want := range []string{"usr/bin/bash", "etc/passwd", "usr/sbin/modprobe"} {
		if !slices.Contains(baseNames, want) {
			t.Errorf("the base has no %s", want)
		}
	}
	for _, want := range []string{"usr/bin/rpm", "usr/lib/x86_64-linux-gnu/librpm.so.10"} {
		if !slices.Contains(layerNames, want) {
			t.Errorf("the layer has no %s", want)
		}
	}
	for _, not := range []string{"usr/bin/bash", "usr/bin/perl", "etc/passwd", "usr/lib/x86_64-linux-gnu/libc.so.6", "init"} {
		if slices.Contains(layerNames, not) {
			t.Errorf("the layer has %s", not)
		}
	}
	if names := cpioNames(t, "the agent's part", initrd[len(base)+len(layer):]); !slices.Contains(names, "init") {
		t.Errorf("the agent's part holds %q", names)
	}
}
