package outputdisk

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// testDisk is an output disk in a file, holding an image of imageSize
// bytes; mksquashfs is a stand-in that writes a marker.
func testDisk(t *testing.T, imageSize int) (*Disk, string, *toolrun.Fake) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "output.raw")
	if err := os.WriteFile(path, bytes.Repeat([]byte("I"), imageSize), 0o644); err != nil {
		t.Fatal(err)
	}
	run := &toolrun.Fake{Reply: func(call []string) ([]byte, error) {
		return nil, os.WriteFile(call[2], []byte("SQUASHFS"), 0o644)
	}}
	d := &Disk{Open: func() (*os.File, error) { return os.OpenFile(path, os.O_WRONLY, 0) },
		Run: run, Out: io.Discard, Work: t.TempDir()}
	return d, path, run
}

// tree is a directory holding the files given, name → content.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarNames are the regular files of the tar at data[off:off+n].
func tarNames(t *testing.T, data []byte, off, n int64) []string {
	t.Helper()
	r := tar.NewReader(bytes.NewReader(data[off : off+n]))
	var names []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("tar at %d: %v", off, err)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
}

func TestOutputsFollowTheImage(t *testing.T) {
	d, path, run := testDisk(t, 4096)
	root := tree(t, map[string]string{"hello": "world"})
	emitted := tree(t, map[string]string{"img.vmlinuz": "kernel", "img.initrd": "initramfs"})
	res, err := d.Write(Outputs{ImageSize: 4096, Types: []string{"qcow2", api.TypeTgz, api.TypeSquashfs},
		Tree: root, Manifests: tree(t, map[string]string{"dib-manifest": "m"}), EmittedDir: emitted,
		Emitted: []api.EmittedFile{{Name: "img.initrd", Phase: "cleanup.d", Size: 9}, {Name: "img.vmlinuz", Phase: "cleanup.d", Size: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data[:4096], bytes.Repeat([]byte("I"), 4096)) {
		t.Error("the image was written over")
	}
	if res.ImageSize != 4096 || res.TarOffset != 4096 || res.TarSize == 0 || res.TarSize%512 != 0 {
		t.Fatalf("result %+v", res)
	}
	if names := tarNames(t, data, res.TarOffset, res.TarSize); !slices.Equal(names, []string{"./hello"}) {
		t.Errorf("tree tar holds %q", names)
	}
	if res.SquashfsOffset != res.TarOffset+res.TarSize || string(data[res.SquashfsOffset:res.SquashfsOffset+res.SquashfsSize]) != "SQUASHFS" {
		t.Errorf("squashfs at %d, %d bytes", res.SquashfsOffset, res.SquashfsSize)
	}
	if res.ManifestsOffset != res.SquashfsOffset+res.SquashfsSize {
		t.Errorf("manifests at %d", res.ManifestsOffset)
	}
	if names := tarNames(t, data, res.ManifestsOffset, res.ManifestsSize); !slices.Equal(names, []string{"./dib-manifest"}) {
		t.Errorf("manifests tar holds %q", names)
	}
	end := res.ManifestsOffset + res.ManifestsSize
	for i, want := range []string{"initramfs", "kernel"} {
		f := res.Emitted[i]
		if f.Offset != end || string(data[f.Offset:f.Offset+f.Size]) != want {
			t.Errorf("%s at %d, %d bytes, want %q at %d", f.Name, f.Offset, f.Size, want, end)
		}
		end += f.Size
	}
	if res.End() != int64(len(data)) {
		t.Errorf("outputs end at %d, the disk at %d", res.End(), len(data))
	}
	want := []string{"mksquashfs " + root + " " + filepath.Join(d.Work, "image.squash") + " -comp xz -noappend -quiet -no-progress"}
	if got := run.Lines(); !slices.Equal(got, want) {
		t.Errorf("ran %q", got)
	}
	if _, err := os.Stat(filepath.Join(d.Work, "image.squash")); err == nil {
		t.Error("the squashfs stays in the work space")
	}
}

// An image alone, with an empty manifests directory, adds nothing.
func TestImageAlone(t *testing.T) {
	d, path, run := testDisk(t, 1024)
	res, err := d.Write(Outputs{ImageSize: 1024, Types: []string{"raw"}, Tree: t.TempDir(), Manifests: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res, api.Result{ImageSize: 1024, TarOffset: 1024}) || len(run.Calls) != 0 {
		t.Errorf("result %+v, ran %q", res, run.Lines())
	}
	if fi, _ := os.Stat(path); fi.Size() != 1024 {
		t.Errorf("the disk grew to %d", fi.Size())
	}
}

func TestTarFailure(t *testing.T) {
	d, _, _ := testDisk(t, 0)
	_, err := d.Write(Outputs{Types: []string{api.TypeTar}, Tree: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.HasPrefix(err.Error(), "tar ") {
		t.Errorf("a missing tree: %v", err)
	}
}

// An emitted file swapped for a link, or grown, after it was checked is
// not copied.
func TestEmittedFileChangedAfterCheck(t *testing.T) {
	d, _, _ := testDisk(t, 0)
	dir := tree(t, map[string]string{"img.kernel": "kernel"})
	os.Symlink("/etc/passwd", filepath.Join(dir, "img.link"))
	for _, f := range []api.EmittedFile{{Name: "img.kernel", Size: 3}, {Name: "img.link", Size: 3}} {
		_, err := d.Write(Outputs{Tree: t.TempDir(), EmittedDir: dir, Emitted: []api.EmittedFile{f}})
		if err == nil || !strings.Contains(err.Error(), f.Name) {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
}
