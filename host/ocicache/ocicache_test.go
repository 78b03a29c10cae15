package ocicache

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dibvm/dibvm/host/ocicache/registrytest"
	"github.com/dibvm/dibvm/host/sshsign"
)

// localFiles are the files at paths, by name, as Push takes them.
func localFiles(t *testing.T, paths map[string]string) []File {
	t.Helper()
	var out []File
	for n, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, LocalFile(n, p, fmt.Sprintf("sha256:%x", sha256.Sum256(b)), int64(len(b))))
	}
	return out
}

func keygen(t *testing.T, dir, name string) (*sshsign.Signer, string) {
	t.Helper()
	key := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	s, err := sshsign.LoadSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, name+".allowed")
	pub, _ := os.ReadFile(key + ".pub")
	os.WriteFile(allowed, []byte("ci@example.com "+string(pub)), 0o644)
	return s, allowed
}

// Pushed by one runner, an artifact is pulled whole by another that
// trusts the pusher's key and asks for the same key; files it has are
// not fetched. An artifact signed by a key it does not trust, or for
// another key, is refused; one the registry has not is ErrNotFound.
func TestPushPull(t *testing.T) {
	reg := registrytest.Start(t, "", "")
	addr := reg.Addr
	dir := t.TempDir()
	signer, allowed := keygen(t, dir, "pusher")
	stranger, _ := keygen(t, dir, "stranger")
	trusted, err := sshsign.LoadTrusted(allowed)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, n := range []string{"a.qcow2", "b.qcow2"} {
		b := make([]byte, 3<<20)
		rand.Read(b)
		files[n] = filepath.Join(dir, n)
		os.WriteFile(files[n], b, 0o644)
	}
	r := &Remote{Repo: mustRepo(t, addr+"/dibvm/cache"), Stall: 30 * time.Second}
	ctx := context.Background()
	key := strings.Repeat("ab", 32)
	if err := r.Push(ctx, key, localFiles(t, files), []byte(`{"phase":"root.d"}`), signer); err != nil {
		t.Fatal(err)
	}
	into := t.TempDir()
	have := func(string) (string, bool) { return "", false }
	desc, err := pull(r, ctx, key, trusted, into, have)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range desc.Files {
		want, _ := os.ReadFile(files[f.Name])
		got, _ := os.ReadFile(filepath.Join(into, f.Name))
		if !bytes.Equal(got, want) {
			t.Errorf("%s pulled differs", f.Name)
		}
	}
	if string(desc.Data) != `{"phase":"root.d"}` {
		t.Errorf("data %s", desc.Data)
	}
	// Files already here are not fetched again.
	again := t.TempDir()
	if _, err := pull(r, ctx, key, trusted, again, func(string) (string, bool) { return "/somewhere", true }); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(again); len(left) != 0 {
		t.Errorf("fetched though present: %v", left)
	}

	other := strings.Repeat("cd", 32)
	if err := r.Push(ctx, other, localFiles(t, files), nil, stranger); err != nil {
		t.Fatal(err)
	}
	if _, err := pull(r, ctx, other, trusted, t.TempDir(), have); !errors.Is(err, sshsign.ErrUntrusted) {
		t.Errorf("signed by an untrusted key: %v", err)
	}
	// The artifact of one key put under the tag of another.
	moved := strings.Repeat("12", 32)
	got, err := remote.Get(r.Repo.Tag(key))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r.Repo.Tag(moved), rawManifest(got.Manifest)); err != nil {
		t.Fatal(err)
	}
	if _, err := pull(r, ctx, moved, trusted, t.TempDir(), have); err == nil || !strings.Contains(err.Error(), "signed for key "+key+", not this one") {
		t.Errorf("an artifact under another key's tag: %v", err)
	}
	// A file changed in the registry's storage: refused at its end, and
	// nothing left where it was to be.
	blobs := reg.Blobs()
	changed := 0
	for _, b := range blobs {
		if info, _ := os.Stat(b); info.Size() == 3<<20 {
			os.WriteFile(b, make([]byte, 3<<20), 0o644)
			changed++
		}
	}
	if changed != 2 {
		t.Fatalf("changed %d of the registry's blobs, want 2", changed)
	}
	tampered := t.TempDir()
	if _, err := pull(r, ctx, key, trusted, tampered, have); !errors.Is(err, ErrRefused) {
		t.Errorf("a changed file was pulled, or not refused: %v", err)
	}
	if left := left(tampered); len(left) != 0 {
		t.Errorf("left after a refused pull: %v", left)
	}
	if _, err := pull(r, ctx, strings.Repeat("ef", 32), trusted, t.TempDir(), have); !errors.Is(err, ErrNotFound) {
		t.Errorf("a key never pushed: %v", err)
	}
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A registry that does not answer makes a pull and a push fail within
// their bound, not hang.
func TestAHangingRegistry(t *testing.T) {
	r := &Remote{Repo: mustRepo(t, registrytest.Hanging(t)+"/dibvm/cache"), Stall: 3 * time.Second}
	start := time.Now()
	_, err := pull(r, context.Background(), strings.Repeat("ab", 32), nil, t.TempDir(), noFiles)
	if !errors.Is(err, ErrStalled) || time.Since(start) > 10*time.Second {
		t.Errorf("pull from a registry that does not answer: %v after %s", err, time.Since(start))
	}
	t.Logf("pull gave up after %s: %v", time.Since(start).Round(time.Millisecond), err)
	dir := t.TempDir()
	signer, _ := keygen(t, dir, "pusher")
	os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
	start = time.Now()
	err = r.Push(context.Background(), strings.Repeat("ab", 32), localFiles(t, map[string]string{"a": filepath.Join(dir, "a")}), nil, signer)
	if !errors.Is(err, ErrStalled) || time.Since(start) > 10*time.Second {
		t.Errorf("push to a registry that does not answer: %v after %s", err, time.Since(start))
	}
}

// pull is Pull into dir, through dir.
func pull(r *Remote, ctx context.Context, key string, trusted sshsign.Trusted, dir string, have func(string) (string, bool)) (*Description, error) {
	return r.Pull(ctx, key, trusted, dir, dir, have, nil)
}

// left is what is in dir but its lock file, which pulls leave (empty).
func left(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.Name() != PartialsLock {
			out = append(out, e.Name())
		}
	}
	return out
}
