package outputs

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func tarOf(t *testing.T, entries ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Name))
		}
	}
	tw.Close()
	return &b
}

func TestExtractManifests(t *testing.T) {
	dir := t.TempDir()
	b := tarOf(t,
		&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o700},
		&tar.Header{Name: "./dib-manifest-dpkg-img", Typeflag: tar.TypeReg, Mode: 0o4755},
		&tar.Header{Name: "./sub/more", Typeflag: tar.TypeReg, Mode: 0o600},
		&tar.Header{Name: "./link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	)
	if err := extractManifests(dir, b); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "dib-manifest-dpkg-img"))
	if err != nil || fi.Mode() != 0o644 {
		t.Errorf("manifest: %v %v (want a plain 0644 file)", fi, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "sub", "more")); string(data) != "./sub/more" {
		t.Errorf("sub/more = %q", data)
	}
	if _, err := os.Lstat(filepath.Join(dir, "link")); err == nil {
		t.Error("a symlink from the guest was made on the host")
	}
}

func TestExtractManifestsRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../outside", "/etc/evil", "a/../../outside"} {
		dir := t.TempDir()
		err := extractManifests(dir, tarOf(t, &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}))
		if err == nil || !strings.Contains(err.Error(), "not a path inside") {
			t.Errorf("%q: %v", name, err)
		}
	}
	// A repeated name cannot overwrite what is there.
	dir := t.TempDir()
	err := extractManifests(dir, tarOf(t,
		&tar.Header{Name: "m", Typeflag: tar.TypeReg, Mode: 0o644},
		&tar.Header{Name: "m", Typeflag: tar.TypeReg, Mode: 0o644}))
	if err == nil {
		t.Error("a name given twice was written twice")
	}
}

// A guest cannot fill the host's directory tree with manifests: their
// entries and depth are bounded, and bytes are.
func TestExtractManifestsBounds(t *testing.T) {
	many := make([]*tar.Header, maxManifestEntries+1)
	for i := range many {
		many[i] = &tar.Header{Name: fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg, Mode: 0o644}
	}
	deep := strings.Repeat("d/", maxManifestDepth) + "file"
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
		want    string
	}{
		{"too many files", many, "more than 10000 entries"},
		{"too many links", slices.Repeat([]*tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "x"}}, maxManifestEntries+1), "more than 10000 entries"},
		{"too deep", []*tar.Header{{Name: deep, Typeflag: tar.TypeReg, Mode: 0o644}}, "levels deep"},
		{"too deep a directory", []*tar.Header{{Name: deep + "/", Typeflag: tar.TypeDir, Mode: 0o755}}, "levels deep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := extractManifests(t.TempDir(), tarOf(t, tc.entries...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
	// As deep and as many as allowed are taken.
	ok := []*tar.Header{{Name: strings.Repeat("d/", maxManifestDepth-1) + "file", Typeflag: tar.TypeReg, Mode: 0o644}}
	if err := extractManifests(t.TempDir(), tarOf(t, append(ok, many[:maxManifestEntries-1]...)...)); err != nil {
		t.Errorf("manifests within the bounds: %v", err)
	}
}
