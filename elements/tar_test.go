package elements

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dibvm/dibvm/elements/elementtest"
)

func TestWriteTar(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides":      "operating-system\n",
		"os/root.d/10-root*":       "#!/bin/sh\necho root\n",
		"os/package-installs.yaml": "foo:\n",
		"os/static/etc/motd":       "hi\n",
		"app/element-deps":         "os\n",
		"app/install.d/20-app*":    "#!/bin/sh\n",
		"app/environment.d/10-app": "export A=1\n",
	})
	os.Symlink("motd", filepath.Join(root, "os", "static", "etc", "issue"))
	els := expandTree(t, root, "app")
	h, err := MergeHooks(els)
	if err != nil {
		t.Fatal(err)
	}
	got, content := writeAndRead(t, els, h)
	for name, mode := range map[string]int64{
		"hooks/root.d/10-root":              0o755,
		"hooks/install.d/20-app":            0o755,
		"hooks/environment.d/10-app":        0o644,
		"elements/os/package-installs.yaml": 0o644,
		"elements/os/root.d/10-root":        0o755,
		"elements/os/static/etc/motd":       0o644,
	} {
		h, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s mode %o, want %o", name, h.Mode, mode)
		}
	}
	if content["hooks/root.d/10-root"] != "#!/bin/sh\necho root\n" {
		t.Errorf("hook content %q", content["hooks/root.d/10-root"])
	}
	if h := got["elements/os/static/etc/issue"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "motd" {
		t.Errorf("symlink not kept: %+v", h)
	}
	if h := got["hooks/install.d/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Error("no directory entry for hooks/install.d")
	}
}

// writeAndRead writes the tar of els and h and reads it back: each
// entry's header and content by name.
func writeAndRead(t *testing.T, els []*Element, h *Hooks) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTar(&buf, els, h); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	content := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return got, content
		}
		if err != nil {
			t.Fatal(err)
		}
		got[hdr.Name] = hdr
		b, _ := io.ReadAll(tr)
		content[hdr.Name] = string(b)
	}
}
