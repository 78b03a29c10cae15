package vmimage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// dirShared is a shared cache in a directory, standing in for a
// registry (host/ocicache has the real one): a base a key.
type dirShared struct{ dir string }

func (d dirShared) FetchBase(_ context.Context, key, dir string) error {
	src := filepath.Join(d.dir, key)
	if _, err := os.Stat(src); err != nil {
		return ErrNotShared
	}
	return os.CopyFS(dir, os.DirFS(src))
}

func (d dirShared) SendBase(_ context.Context, key, dir string) error {
	return os.CopyFS(filepath.Join(d.dir, key), os.DirFS(dir))
}

// A base built on one machine is sent to the shared cache, and another
// machine takes it from there under the key it computed from the
// mirror's index, downloading no package; one whose manifest is of other
// packages is refused and the base built here.
func TestBaseFromTheSharedCache(t *testing.T) {
	m := newStandInMirror(t)
	m.publish(t, standInDistribution("4.20.1"))
	shared := dirShared{dir: t.TempDir()}
	var log bytes.Buffer
	first := &Cache{Dir: t.TempDir(), Keyring: openpgp.EntityList{m.signer}, Shared: shared, Log: &log}
	spec := Spec{Mirror: m.url(), Suite: "stable", Arch: "amd64", Packages: []string{"bash"}}
	agent := NewAgent([]byte("agent"))
	ctx := context.Background()
	built, err := first.Ensure(ctx, spec, agent)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "appliance: base sent to the shared cache") {
		t.Errorf("the base was not sent:\n%s", log.String())
	}
	second := &Cache{Dir: t.TempDir(), Keyring: openpgp.EntityList{m.signer}, Shared: shared, Log: &log}
	taken, err := second.Ensure(ctx, spec, agent)
	if err != nil {
		t.Fatal(err)
	}
	if n := m.downloads("pool/main/bash_5.2_amd64.deb"); n != 1 {
		t.Errorf("bash downloaded %d times: the second machine built the base", n)
	}
	a, _ := os.ReadFile(built.Initrd)
	b, _ := os.ReadFile(taken.Initrd)
	if !bytes.Equal(a, b) || taken.Manifest.Digest() != built.Manifest.Digest() {
		t.Error("the base taken is not the one built")
	}

	// The shared base's manifest names other packages.
	key := BaseKey(built.Manifest)
	mf := filepath.Join(shared.dir, key, "manifest.json")
	data, _ := os.ReadFile(mf)
	os.WriteFile(mf, bytes.Replace(data, []byte(built.Manifest.Packages[0].SHA256), []byte(strings.Repeat("0", 64)), 1), 0o644)
	log.Reset()
	third := &Cache{Dir: t.TempDir(), Keyring: openpgp.EntityList{m.signer}, Shared: shared, Log: &log}
	if _, err := third.Ensure(ctx, spec, agent); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "its manifest is of other packages than "+key+"; building it here") || m.downloads("pool/main/bash_5.2_amd64.deb") != 2 {
		t.Errorf("a base of other packages was taken:\n%s", log.String())
	}
}
