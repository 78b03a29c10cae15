package overlay

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// write has qemu-io write pattern over the first 4 KiB of the layer, as
// a guest would.
func write(t *testing.T, l *Layer, pattern string) {
	t.Helper()
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P "+pattern+" 0 4k", l.Path).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
}

func firstBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:4096]
}

func TestLayer(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil && os.Getenv("CI") == "" {
		t.Skip("qemu-io (qemu-utils) is not installed")
	}
	ctx := context.Background()
	dir := t.TempDir()
	image := filepath.Join(dir, "image.raw")
	if err := os.WriteFile(image, bytes.Repeat([]byte{0x11}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	l, err := New(ctx, work, image, "raw")
	if err != nil {
		t.Fatal(err)
	}
	write(t, l, "0xab")

	// Convert writes the changed image and leaves the original alone.
	out := filepath.Join(dir, "out.raw")
	if err := l.Convert(ctx, out, "raw", 0o640); err != nil {
		t.Fatal(err)
	}
	if got := firstBytes(t, out); !bytes.Equal(got, bytes.Repeat([]byte{0xab}, 4096)) {
		t.Errorf("the output does not hold what the guest wrote: % x…", got[:8])
	}
	if got := firstBytes(t, image); !bytes.Equal(got, bytes.Repeat([]byte{0x11}, 4096)) {
		t.Errorf("Convert changed the original: % x…", got[:8])
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the output's mode: %v, %v; want 0640", fi.Mode(), err)
	}

	// An existing output is not replaced, and nothing partial is left.
	err = l.Convert(ctx, out, "qcow2", 0o640)
	if err == nil || !strings.Contains(err.Error(), "out.raw") {
		t.Errorf("Convert over an existing file: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*partial*")); len(m) > 0 {
		t.Errorf("left behind: %v", m)
	}

	// Commit writes the change into the original.
	if err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := firstBytes(t, image); !bytes.Equal(got, bytes.Repeat([]byte{0xab}, 4096)) {
		t.Errorf("Commit did not change the original: % x…", got[:8])
	}
}
