package ocicache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dibvm/dibvm/host/ocicache/registrytest"
	"github.com/dibvm/dibvm/host/sshsign"
)

// A registry that asks for a password gets the one in the user's Docker
// config, and one without it is a failure, not a missing artifact.
func TestCredentialsFromDockerConfig(t *testing.T) {
	reg := registrytest.Start(t, "ci", "s3cret")
	dir := t.TempDir()
	signer, allowed := keygen(t, dir, "pusher")
	trusted, err := sshsign.LoadTrusted(allowed)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a"), []byte("layer"), 0o644)
	files := localFiles(t, map[string]string{"a": filepath.Join(dir, "a")})
	r := &Remote{Repo: mustRepo(t, reg.Addr+"/dibvm/cache"), Stall: 30 * time.Second}
	key := strings.Repeat("ab", 32)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if err := r.Push(context.Background(), key, files, nil, signer); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("pushed without credentials: %v", err)
	}
	if _, err := pull(r, context.Background(), key, trusted, t.TempDir(), noFiles); err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrRefused) {
		t.Errorf("pulled without credentials: %v", err)
	}
	config := t.TempDir()
	reg.DockerConfig(t, config, "ci", "s3cret")
	t.Setenv("DOCKER_CONFIG", config)
	if err := r.Push(context.Background(), key, files, nil, signer); err != nil {
		t.Fatal(err)
	}
	into := t.TempDir()
	if _, err := pull(r, context.Background(), key, trusted, into, noFiles); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(into, "a")); string(b) != "layer" {
		t.Errorf("pulled %q", b)
	}
}

func noFiles(string) (string, bool) { return "", false }

// A push cut off leaves no artifact; two pushes of one key at once leave
// one of them whole; a pull cut off is taken up from where it stopped,
// and bytes left that are not the file's are refused, then dropped.
func TestPartialAndConcurrentUse(t *testing.T) {
	reg := registrytest.Start(t, "", "")
	dir := t.TempDir()
	signer, allowed := keygen(t, dir, "pusher")
	trusted, err := sshsign.LoadTrusted(allowed)
	if err != nil {
		t.Fatal(err)
	}
	r := &Remote{Repo: mustRepo(t, reg.Addr+"/dibvm/cache"), Stall: 30 * time.Second}
	ctx := context.Background()
	key := strings.Repeat("ab", 32)
	whole := make([]byte, 4<<20)
	rand.Read(whole)
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256(whole))
	cut := filepath.Join(dir, "cut")
	os.WriteFile(cut, whole[:1<<20], 0o644)
	if err := r.Push(ctx, key, []File{LocalFile("a", cut, sum, int64(len(whole)))}, nil, signer); err == nil {
		t.Fatal("a push whose file ended early succeeded")
	}
	if _, err := remote.Head(r.Repo.Tag(key)); err == nil {
		t.Error("a push cut off left a tag")
	}
	if _, err := pull(r, ctx, key, trusted, t.TempDir(), noFiles); !errors.Is(err, ErrNotFound) {
		t.Errorf("after a push cut off: %v", err)
	}

	// Two runners push the key at once, each its own bytes.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		p := filepath.Join(dir, fmt.Sprint("runner", i))
		b := make([]byte, 2<<20)
		rand.Read(b)
		os.WriteFile(p, b, 0o644)
		wg.Go(func() { errs[i] = r.Push(ctx, key, localFiles(t, map[string]string{"a": p}), nil, signer) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	into := t.TempDir()
	desc, err := pull(r, ctx, key, trusted, into, noFiles)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(into, "a"))
	if fmt.Sprintf("sha256:%x", sha256.Sum256(got)) != desc.Files[0].Digest {
		t.Error("two pushes of one key left a file not its description's")
	}

	// A pull cut off after a quarter: the next takes it up.
	full := filepath.Join(dir, "full")
	os.WriteFile(full, whole, 0o644)
	if err := r.Push(ctx, key, []File{LocalFile("a", full, sum, int64(len(whole)))}, nil, signer); err != nil {
		t.Fatal(err)
	}
	h, _ := v1.NewHash(sum)
	into = t.TempDir()
	os.WriteFile(partialName(into, h), whole[:1<<20], 0o600)
	if _, err := pull(r, ctx, key, trusted, into, noFiles); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(into, "a")); string(got) != string(whole) {
		t.Error("a pull taken up is not the file")
	}
	// What was left is not the file's first bytes: refused, and gone.
	into = t.TempDir()
	os.WriteFile(partialName(into, h), make([]byte, 1<<20), 0o600)
	if _, err := pull(r, ctx, key, trusted, into, noFiles); !errors.Is(err, ErrRefused) {
		t.Errorf("a pull taken up from bytes not the file's: %v", err)
	}
	if left := left(into); len(left) != 0 {
		t.Errorf("left after a refused pull: %v", left)
	}
	if _, err := pull(r, ctx, key, trusted, into, noFiles); err != nil {
		t.Errorf("the pull after: %v", err)
	}
}
