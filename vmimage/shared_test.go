package vmimage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func (d dirShared) SendBase(_ context.Context, keys []string, dir string) error {
	if _, err := os.Stat(filepath.Join(d.dir, keys[0])); err == nil {
		return ErrHaveIt
	}
	for _, key := range keys {
		os.RemoveAll(filepath.Join(d.dir, key))
		if err := os.CopyFS(filepath.Join(d.dir, key), os.DirFS(dir)); err != nil {
			return err
		}
	}
	return nil
}

// A base built on one machine is sent to the shared cache under the
// key of its packages and of its spec. Another machine with no base for
// the spec takes it from there without asking the mirror, so that its
// appliance is the first's. A base too old for it, or whose manifest is
// of other packages than its key, is refused and the base built here.
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
	before := m.requests()
	second := &Cache{Dir: t.TempDir(), Keyring: openpgp.EntityList{m.signer}, Shared: shared, Log: &log, SharedMaxAge: time.Hour}
	taken, err := second.Ensure(ctx, spec, agent)
	if err != nil {
		t.Fatal(err)
	}
	if m.requests() != before {
		t.Errorf("the second machine asked the mirror")
	}
	a, _ := os.ReadFile(built.Initrd)
	b, _ := os.ReadFile(taken.Initrd)
	if !bytes.Equal(a, b) || taken.Manifest.Digest() != built.Manifest.Digest() || taken.Initrd[len(second.Dir):] != built.Initrd[len(first.Dir):] {
		t.Error("the appliance taken is not the one built")
	}

	// The spec's base is old; the base of its packages names others.
	edit := func(key, old, new string) {
		mf := filepath.Join(shared.dir, key, "manifest.json")
		data, _ := os.ReadFile(mf)
		if !bytes.Contains(data, []byte(old)) {
			t.Fatalf("%s has no %q", mf, old)
		}
		os.WriteFile(mf, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644)
	}
	edit(SpecKey(spec), built.Manifest.Built.Format(time.RFC3339Nano), "2020-01-01T00:00:00Z")
	key := BaseKey(built.Manifest)
	edit(key, built.Manifest.Packages[0].SHA256, strings.Repeat("0", 64))
	log.Reset()
	third := &Cache{Dir: t.TempDir(), Keyring: openpgp.EntityList{m.signer}, Shared: shared, Log: &log, SharedMaxAge: time.Hour}
	if _, err := third.Ensure(ctx, spec, agent); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"longer than --checkpoint-max-age; building it here", "its manifest is of other packages than " + key + "; building it here"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
	if n := m.downloads("pool/main/bash_5.2_amd64.deb"); n != 2 {
		t.Errorf("bash downloaded %d times, want twice: the third machine took a base it should not have", n)
	}
}
