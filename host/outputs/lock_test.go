package outputs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

// The lock file is made of the package list the guest put on the disk,
// written beside the image with no checksum file, and reported with its
// SHA-256; a list the guest's agent would not write fails the build, and
// leaves nothing.
func TestWriteLock(t *testing.T) {
	list := "base-files\t12.4+deb12u8\tamd64\nzlib1g\t1:1.2.13.dfsg-1\tamd64\n"
	for _, c := range []struct {
		name, list, err string
	}{
		{"the guest's list", list, ""},
		{"a list with an escape", "base-files\t12.4\x1b[2J\tamd64\n", "field dpkg and rpm do not allow"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			disk := filepath.Join(t.TempDir(), "out.raw")
			os.WriteFile(disk, []byte(strings.Repeat("T", 512)+c.list), 0o600)
			r := &api.Result{TarSize: 512, PackagesOffset: 512, PackagesSize: int64(len(c.list))}
			var got []api.Package
			o := Options{Output: filepath.Join(dir, "img"), Types: []string{api.TypeTar}, Checksums: []string{"md5"}, Stdout: io.Discard,
				Lock: func(installed []api.Package) ([]byte, error) {
					got = installed
					return []byte("the lock\n"), nil
				}}
			written, err := Write(context.Background(), o, disk, r)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("Write: %v, want %q", err, c.err)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("left %v", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := []api.Package{{Name: "base-files", Version: "12.4+deb12u8", Arch: "amd64"}, {Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64"}}; !slices.Equal(got, want) {
				t.Errorf("Lock got %v, want %v", got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "img.lock")); string(b) != "the lock\n" {
				t.Errorf("img.lock: %q", b)
			}
			sum := sha256.Sum256([]byte("the lock\n"))
			if i := slices.IndexFunc(written, func(w Written) bool { return filepath.Base(w.Path) == "img.lock" }); i < 0 || written[i].SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("written %+v: no img.lock with its SHA-256", written)
			}
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if want := []string{"img.lock", "img.tar", "img.tar.md5"}; !slices.Equal(names, want) {
				t.Errorf("the directory holds %q, want %q", names, want)
			}
		})
	}
}
