package ocicache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/ocicache/registrytest"
	"github.com/dibvm/dibvm/host/sshsign"
	"github.com/dibvm/dibvm/vmimage"
)

// A chain of real qcow2 layers sent by one store through the registry is
// taken whole into another, from the first registry that has it.
func TestCheckpointsThroughARegistry(t *testing.T) {
	addr := registrytest.Start(t, "", "").Addr
	dir := t.TempDir()
	signer, allowed := keygen(t, dir, "pusher")
	trusted, err := sshsign.LoadTrusted(allowed)
	if err != nil {
		t.Fatal(err)
	}
	a := &checkpoint.Store{Dir: filepath.Join(dir, "a")}
	sa, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	var below *checkpoint.Meta
	var key string
	for i, phase := range []string{"root.d", "install.d"} {
		l, err := sa.NewLayer(below, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		m := &checkpoint.Meta{Key: strings.Repeat(string(rune('1'+i)), 64), Phase: phase, Made: time.Now(), Elements: []string{"e"}}
		if below != nil {
			m.Parent, m.Backing = below.Key, below.Layer
		}
		if err := sa.Publish(l, m); err != nil {
			t.Fatal(err)
		}
		below, key = m, m.Key
	}
	chain, files, err := sa.Export(key)
	if err != nil {
		t.Fatal(err)
	}
	empty := &Remote{Repo: mustRepo(t, addr+"/dibvm/empty"), Stall: 30 * time.Second}
	full := &Remote{Repo: mustRepo(t, addr+"/dibvm/cache"), Stall: 30 * time.Second}
	ctx := context.Background()
	if err := (&Registries{To: full, Sign: signer}).Send(ctx, key, chain, files); err != nil {
		t.Fatal(err)
	}
	b := &checkpoint.Store{Dir: filepath.Join(dir, "b")}
	sb, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	into := t.TempDir()
	got, gotFiles, err := (&Registries{From: []*Remote{empty, full}, Trusted: trusted}).Fetch(ctx, key, func(string) (string, bool) { return "", false }, into, into, func([]*checkpoint.Meta) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	top, err := sb.Import(key, got, gotFiles)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Verify(top); err != nil || top.Phase != "install.d" {
		t.Errorf("taken: %+v, %v", top, err)
	}
	if _, _, err := (&Registries{From: []*Remote{empty}, Trusted: trusted}).Fetch(ctx, key, nil, into, into, nil); err != checkpoint.ErrNotShared {
		t.Errorf("from a registry without it: %v", err)
	}
	if err := (&Registries{To: full}).Send(ctx, key, chain, files); err == nil {
		t.Error("sent unsigned")
	}
	os.RemoveAll(into)
}

// An appliance base goes through the registry as its files and keyrings,
// and comes back as the directory it was; a registry without it, or a
// build that pushes nowhere, is vmimage.ErrNotShared.
func TestApplianceBaseThroughARegistry(t *testing.T) {
	reg := registrytest.Start(t, "", "")
	dir := t.TempDir()
	signer, allowed := keygen(t, dir, "pusher")
	trusted, err := sshsign.LoadTrusted(allowed)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base")
	os.MkdirAll(filepath.Join(base, "keyrings"), 0o755)
	want := map[string]string{"vmlinuz": "kernel", "base.cpio": "userland", "manifest.json": "{}", "keyrings/debian-archive-keyring.gpg": "keys"}
	for n, c := range want {
		os.WriteFile(filepath.Join(base, n), []byte(c), 0o644)
	}
	r := &Remote{Repo: mustRepo(t, reg.Addr+"/dibvm/cache"), Stall: 30 * time.Second}
	ctx := context.Background()
	key := "appliance-base-" + strings.Repeat("ab", 32)
	if err := (&Registries{}).SendBase(ctx, []string{key}, base); err != vmimage.ErrNotShared {
		t.Errorf("sent with nowhere to send: %v", err)
	}
	if err := (&Registries{To: r, Sign: signer}).SendBase(ctx, []string{key}, base); err != nil {
		t.Fatal(err)
	}
	if err := (&Registries{To: r, Sign: signer}).SendBase(ctx, []string{key}, base); err != vmimage.ErrHaveIt {
		t.Errorf("sent again: %v", err)
	}
	into := t.TempDir()
	if err := (&Registries{From: []*Remote{r}, Trusted: trusted}).FetchBase(ctx, key, into); err != nil {
		t.Fatal(err)
	}
	for n, c := range want {
		if b, _ := os.ReadFile(filepath.Join(into, n)); string(b) != c {
			t.Errorf("%s: %q, want %q", n, b, c)
		}
	}
	if err := (&Registries{From: []*Remote{r}, Trusted: trusted}).FetchBase(ctx, "appliance-base-"+strings.Repeat("cd", 32), t.TempDir()); err != vmimage.ErrNotShared {
		t.Errorf("a base never pushed: %v", err)
	}
	// An artifact with a file a base has not is refused.
	odd := strings.Repeat("ef", 32)
	os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644)
	if err := r.Push(ctx, "appliance-base-"+odd, localFiles(t, map[string]string{"authorized_keys": filepath.Join(dir, "x")}), nil, signer); err != nil {
		t.Fatal(err)
	}
	if err := (&Registries{From: []*Remote{r}, Trusted: trusted}).FetchBase(ctx, "appliance-base-"+odd, t.TempDir()); !errors.Is(err, ErrRefused) {
		t.Errorf("a base with another file: %v", err)
	}
}
