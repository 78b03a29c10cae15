package ocicache

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/host/checkpoint"
	"github.com/dibvm/dibvm/host/ocicache/registrytest"
	"github.com/dibvm/dibvm/host/sshsign"
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
	if err := (&Checkpoints{To: full, Sign: signer}).Send(ctx, key, chain, files); err != nil {
		t.Fatal(err)
	}
	b := &checkpoint.Store{Dir: filepath.Join(dir, "b")}
	sb, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	into := t.TempDir()
	got, gotFiles, err := (&Checkpoints{From: []*Remote{empty, full}, Trusted: trusted}).Fetch(ctx, key, func(string) (string, bool) { return "", false }, into)
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
	if _, _, err := (&Checkpoints{From: []*Remote{empty}, Trusted: trusted}).Fetch(ctx, key, nil, t.TempDir()); err != checkpoint.ErrNotShared {
		t.Errorf("from a registry without it: %v", err)
	}
	if err := (&Checkpoints{To: full}).Send(ctx, key, chain, files); err == nil {
		t.Error("sent unsigned")
	}
	os.RemoveAll(into)
}
