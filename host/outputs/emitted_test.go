package outputs

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

// emittedDisk is an output disk with a "tar" of 512 bytes and two files
// hooks wrote beside the image after it.
func emittedDisk(t *testing.T, names ...string) (string, *api.Result) {
	t.Helper()
	data := strings.Repeat("T", 512) + "kernel" + "initramfs"
	disk := filepath.Join(t.TempDir(), "out.raw")
	os.WriteFile(disk, []byte(data), 0o600)
	return disk, &api.Result{TarSize: 512, Emitted: []api.EmittedFile{
		{Name: names[0], Phase: "cleanup.d", Offset: 512, Size: 6},
		{Name: names[1], Phase: "cleanup.d", Offset: 518, Size: 9},
	}}
}

func TestWriteEmitted(t *testing.T) {
	dir := t.TempDir()
	disk, r := emittedDisk(t, "img.vmlinuz", "img.initrd")
	os.WriteFile(filepath.Join(dir, "img.initrd"), []byte("old"), 0o644) // moved aside, as an image is
	o := Options{Output: filepath.Join(dir, "img"), Types: []string{api.TypeTar}, Checksums: []string{"sha256"}, Stdout: io.Discard}
	written, err := Write(context.Background(), o, disk, r)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"img.vmlinuz": "kernel", "img.initrd": "initramfs"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	var got []string
	for _, w := range written {
		got = append(got, filepath.Base(w.Path)+":"+w.EmittedBy)
	}
	if want := []string{"img.tar:", "img.vmlinuz:cleanup.d", "img.initrd:cleanup.d"}; !slices.Equal(got, want) {
		t.Errorf("written %q, want %q", got, want)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// The old file moved aside, a sum for the image only (as DIB's), nothing partial.
	if len(names) != 5 || !slices.Contains(names, "img.tar.sha256") || !strings.HasPrefix(names[1], "img.initrd-") {
		t.Errorf("the directory holds %q", names)
	}
}

// A hook's file of an output's name, or of the build's records', is
// refused, and nothing is written.
func TestWriteEmittedRefusesOwnNames(t *testing.T) {
	for _, name := range []string{"img.tar", "img.tar.md5", "img.qcow2", "img.lock", "img.provenance.json"} {
		dir := t.TempDir()
		disk, r := emittedDisk(t, "img.vmlinuz", name)
		o := Options{Output: filepath.Join(dir, "img"), Types: []string{api.TypeTar, "qcow2"}, Checksums: []string{"md5"}, Stdout: io.Discard}
		r.ImageSize = 0
		_, err := Write(context.Background(), o, disk, r)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, name)) || !strings.Contains(err.Error(), "cleanup.d hook") {
			t.Errorf("%s: %v", name, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: left %v", name, entries)
		}
	}
}
