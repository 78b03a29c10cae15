package iso

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdomanski/iso9660"
)

// readBack returns the files on the ISO image at path, by name.
func readBack(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := img.Label(); id != VolumeID {
		t.Errorf("volume label %q, want %q", id, VolumeID)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, c := range children {
		b, err := io.ReadAll(c.Reader())
		if err != nil {
			t.Fatal(err)
		}
		files[c.Name()] = string(b)
	}
	return files
}

// The same files written twice give two whole disks: a VM that falls
// back to TCG from a failed hypervisor boots again from a second one.
func TestWriteTwiceKeepsContent(t *testing.T) {
	files := []File{
		{Name: "build.json", Data: []byte(`{"image_name":"x"}`)},
		{Name: "elements.tar", Data: []byte("tar bytes")},
	}
	dir := t.TempDir()
	for _, name := range []string{"first.iso", "second.iso"} {
		path := filepath.Join(dir, name)
		if err := Write(path, files); err != nil {
			t.Fatal(err)
		}
		got := readBack(t, path)
		for _, f := range files {
			if got[f.Name] != string(f.Data) {
				t.Errorf("%s: %s holds %q, want %q", name, f.Name, got[f.Name], f.Data)
			}
		}
	}
}

func TestWriteRejectsNamesTheDiskWouldChange(t *testing.T) {
	for _, name := range []string{"Build.json", "a/b", "elements.tar.gz", ""} {
		if err := Write(filepath.Join(t.TempDir(), "x.iso"), []File{{Name: name, Data: []byte("x")}}); err == nil {
			t.Errorf("name %q was accepted", name)
		}
	}
}
