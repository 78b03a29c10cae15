package emitted

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

func testDir(t *testing.T) *Dir {
	d := &Dir{Path: t.TempDir(), Image: "img", Skip: "img.d"}
	if got := d.ImageName(); got != filepath.Join(d.Path, "img") {
		t.Fatalf("IMAGE_NAME %s", got)
	}
	return d
}

// Files are listed by name with the phase that first left them there.
func TestCheckKeepsFirstPhase(t *testing.T) {
	d := testDir(t)
	os.WriteFile(d.ImageName()+".vmlinuz", []byte("kernel"), 0o644)
	os.MkdirAll(d.ImageName()+".d/dib-manifests", 0o755) // the manifests' directory
	if _, err := d.Check("root.d"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(d.ImageName()+".initrd", []byte("initramfs"), 0o644)
	files, err := d.Check("cleanup.d")
	if err != nil {
		t.Fatal(err)
	}
	want := []api.EmittedFile{{Name: "img.initrd", Phase: "cleanup.d", Size: 9}, {Name: "img.vmlinuz", Phase: "root.d", Size: 6}}
	if len(files) != 2 || files[0] != want[0] || files[1] != want[1] {
		t.Errorf("files %+v, want %+v", files, want)
	}
}

// A build resumed from a checkpoint finds the files of the phases before
// it on the kept disk, with the record of which phase wrote them.
func TestCheckRecordSurvivesResume(t *testing.T) {
	d := testDir(t)
	d.Record = filepath.Join(t.TempDir(), "emitted-by.json")
	os.WriteFile(d.ImageName()+"-early.txt", []byte("early"), 0o644)
	if _, err := d.Check("root.d"); err != nil {
		t.Fatal(err)
	}
	resumed := &Dir{Path: d.Path, Image: d.Image, Skip: d.Skip, Record: d.Record}
	files, err := resumed.Check("extra-data.d")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Phase != "root.d" {
		t.Errorf("after resuming: %+v, want img-early.txt from root.d", files)
	}
	os.WriteFile(d.Record, []byte("{"), 0o644)
	if _, err := (&Dir{Path: d.Path, Image: d.Image, Record: d.Record}).Check("x.d"); err == nil || !strings.Contains(err.Error(), d.Record) {
		t.Errorf("a broken record: %v", err)
	}
}

// What cannot go back is an error naming the file and the phase.
func TestCheckRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, why string
		make      func(p string) error
	}{
		{"img.link", "symbolic link", func(p string) error { return os.Symlink("/etc/passwd", p) }},
		{"img.dir", "directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"img.fifo", "named pipe", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"other.kernel", "IMAGE_NAME.*", func(p string) error { return os.WriteFile(p, nil, 0o644) }},
		{"img.big", "more than the 4 GiB", func(p string) error {
			f, err := os.Create(p)
			if err == nil {
				err = f.Truncate(api.MaxEmittedFile + 1)
				f.Close()
			}
			return err
		}},
	} {
		d := testDir(t)
		if err := tc.make(filepath.Join(d.Path, tc.name)); err != nil {
			t.Fatal(err)
		}
		_, err := d.Check("cleanup.d")
		if err == nil || !strings.HasPrefix(err.Error(), "cleanup.d: ") || !strings.Contains(err.Error(), filepath.Join(d.Path, tc.name)) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestCheckBounds(t *testing.T) {
	d := testDir(t)
	for i := range api.MaxEmittedFiles + 1 {
		os.WriteFile(filepath.Join(d.Path, "img."+string(rune('a'+i/26))+string(rune('a'+i%26))), nil, 0o644)
	}
	if _, err := d.Check("cleanup.d"); err == nil || !strings.Contains(err.Error(), "one file more than the 32") {
		t.Errorf("33 files: %v", err)
	}
	d = testDir(t)
	for _, n := range []string{"img.a", "img.b", "img.c"} {
		f, _ := os.Create(filepath.Join(d.Path, n))
		f.Truncate(api.MaxEmittedTotal/3 + 1)
		f.Close()
	}
	if _, err := d.Check("block-device.d"); err == nil || !strings.Contains(err.Error(), "img.c") || !strings.Contains(err.Error(), "more than 8 GiB") {
		t.Errorf("over 8 GiB: %v", err)
	}
	os.RemoveAll(d.Path)
	if _, err := d.Check("cleanup.d"); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("the directory gone: %v", err)
	}
}
