package debrepo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// makeDeb writes a .deb whose data archive is compressed as ext says.
func makeDeb(t *testing.T, ext string, entries []*tar.Header, bodies map[string]string) string {
	t.Helper()
	tarball := func(hdrs []*tar.Header, bodies map[string]string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			h.Size = int64(len(bodies[h.Name]))
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			io.WriteString(tw, bodies[h.Name])
		}
		tw.Close()
		return buf.Bytes()
	}
	compress := func(data []byte, ext string) []byte {
		var buf bytes.Buffer
		var w io.WriteCloser
		switch ext {
		case "gz":
			w = gzip.NewWriter(&buf)
		case "xz":
			w, _ = xz.NewWriter(&buf)
		case "zst":
			w, _ = zstd.NewWriter(&buf)
		}
		w.Write(data)
		w.Close()
		return buf.Bytes()
	}
	control := tarball([]*tar.Header{{Name: "./control", Mode: 0o644, Typeflag: tar.TypeReg}},
		map[string]string{"./control": "Package: t\nVersion: 1\nArchitecture: all\nMaintainer: x\nDescription: test\n"})
	members := []struct {
		name string
		data []byte
	}{
		{"debian-binary", []byte("2.0\n")},
		{"control.tar.gz", compress(control, "gz")},
		{"data.tar." + ext, compress(tarball(entries, bodies), ext)},
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", m.name, 0, 0, 0, 0o644, len(m.data))
		ar.Write(m.data)
		if len(m.data)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	path := filepath.Join(t.TempDir(), "t.deb")
	os.WriteFile(path, ar.Bytes(), 0o644)
	return path
}

func TestWalkDataKeepsModesAndLinks(t *testing.T) {
	for _, ext := range []string{"xz", "zst", "gz"} {
		t.Run(ext, func(t *testing.T) {
			deb := makeDeb(t, ext, []*tar.Header{
				{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "./usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755},
				{Name: "./usr/bin/sudoedit", Typeflag: tar.TypeSymlink, Linkname: "su"},
			}, map[string]string{"./usr/bin/su": "binary"})
			got := map[string]*tar.Header{}
			var body string
			err := WalkData(deb, func(h *tar.Header, r io.Reader) error {
				got[h.Name] = h
				if h.Typeflag == tar.TypeReg {
					b, _ := io.ReadAll(r)
					body = string(b)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if h := got["./usr/bin/su"]; h == nil || h.Mode != 0o4755 || body != "binary" {
				t.Errorf("regular file lost its mode or content: %+v %q", h, body)
			}
			if h := got["./usr/bin/sudoedit"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "su" {
				t.Errorf("symlink lost: %+v", h)
			}
		})
	}
}

func TestWalkDataRejectsGarbage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.deb")
	os.WriteFile(p, []byte("not an ar archive"), 0o644)
	if err := WalkData(p, func(*tar.Header, io.Reader) error { return nil }); err == nil {
		t.Error("garbage accepted as a .deb")
	}
}
