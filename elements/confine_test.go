package elements

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibvm/dibvm/elements/elementtest"
)

// secret is a host file outside every element tree: what a hostile
// element would like to ship into the VM.
func secret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, []byte("PRIVATE KEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every way out of an element tree is refused when the element is found,
// before anything reads through it, with the element, the file and its
// target in the error.
func TestElementTreeEscapesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		// file in the element "bad" and where it points; "SECRET" is
		// replaced by the host file's path, "ELEMENT" by the element's
		// directory.
		file, target string
		want         string
	}{
		{"hook to a host file", "install.d/50-x", "SECRET", "an absolute symlink leads outside"},
		{"hook climbing out", "install.d/50-x", "../../../../../../../../SECRET", "leads outside the element"},
		{"hook to a sibling element", "install.d/50-x", "../../good/install.d/10-ok", "leads outside the element"},
		{"absolute link into the element itself", "install.d/50-x", "ELEMENT/install.d/10-mine", "an absolute symlink"},
		{"environment.d", "environment.d/10-env", "SECRET", "outside"},
		{"static file", "static/etc/motd", "SECRET", "outside"},
		{"static directory", "static/home", "/", "outside"},
		{"phase directory", "install.d", "/etc", "outside"},
		{"package-installs.yaml", "package-installs.yaml", "SECRET", "outside"},
		{"pkg-map", "pkg-map", "../../../../../../../SECRET", "outside"},
		{"element-deps", "element-deps", "SECRET", "outside"},
		{"block device config", "block-device-default.yaml", "SECRET", "outside"},
		{"through another link", "install.d/50-x", "../data/up/../../x", "through another link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := secret(t)
			root := elementtest.WriteTree(t, map[string]string{
				"good/element-provides":    "operating-system\n",
				"good/install.d/10-ok*":    "#!/bin/sh\n",
				"bad/element-deps":         "good\n",
				"bad/install.d/10-mine*":   "#!/bin/sh\n",
				"bad/data/readme":          "",
				"bad/static/etc/hostname":  "x\n",
				"bad/environment.d/05-env": "",
			})
			el := filepath.Join(root, "bad")
			target := strings.ReplaceAll(strings.ReplaceAll(tc.target, "SECRET", strings.TrimPrefix(host, "/")), "ELEMENT", el)
			if strings.HasPrefix(tc.target, "SECRET") {
				target = host
			}
			file := filepath.Join(el, tc.file)
			os.RemoveAll(file)
			os.MkdirAll(filepath.Dir(file), 0o755)
			if err := os.Symlink(target, file); err != nil {
				t.Fatal(err)
			}
			// The chain: data/up leads out, the hook leads to data/up/x.
			os.Symlink("..", filepath.Join(el, "data", "up"))
			if tc.name != "through another link" {
				os.Remove(filepath.Join(el, "data", "up"))
			}
			lib, err := NewLibrary(root, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Expand(lib, []string{"bad"})
			var esc *EscapeError
			if !errors.As(err, &esc) {
				t.Fatalf("want an EscapeError, got %v", err)
			}
			for _, s := range []string{"element bad", el, tc.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tc.name != "through another link" && !strings.Contains(err.Error(), tc.file+" -> "+target) {
				t.Errorf("error %q does not name the file and its target", err)
			}
		})
	}
}

// Links that stay inside the element are kept as links, as DIB's cp -a
// keeps them, in the element's files and in the merged hook tree; a hook
// reached through one runs as the file it leads to.
func TestElementTreeInsideLinksAreKept(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{
		"os/element-provides":   "operating-system\n",
		"os/bin/tool*":          "#!/bin/sh\necho tool\n",
		"os/common/20-shared*":  "#!/bin/sh\necho shared\n",
		"os/static/etc/motd":    "hi\n",
		"os/static/etc/nothing": "",
	})
	el := filepath.Join(root, "os")
	os.MkdirAll(filepath.Join(el, "install.d"), 0o755)
	os.Symlink("../bin/tool", filepath.Join(el, "install.d", "10-tool"))
	os.Symlink("common", filepath.Join(el, "post-install.d"))
	os.Symlink("motd", filepath.Join(el, "static", "etc", "issue"))
	// Dangling, but inside: meant for the image, as DIB copies it.
	os.Symlink("../run/missing", filepath.Join(el, "static", "etc", "resolv.conf"))
	// A hard link within the tree is the tree's own.
	os.Link(filepath.Join(el, "static", "etc", "motd"), filepath.Join(el, "static", "etc", "motd.bak"))

	els := expandTree(t, root, "os")
	h, err := MergeHooks(els)
	if err != nil {
		t.Fatal(err)
	}
	if run, _ := h.Phase("install.d"); len(run) != 1 || run[0].Link != "../bin/tool" {
		t.Errorf("install.d runs %+v, want the linked tool", run)
	}
	if run, _ := h.Phase("post-install.d"); len(run) != 1 || run[0].Path != "post-install.d/20-shared" {
		t.Errorf("a linked phase directory runs %+v", run)
	}
	headers, _ := writeAndRead(t, els, h)
	links := map[string]string{}
	for name, hdr := range headers {
		if hdr.Typeflag == tar.TypeSymlink {
			links[name] = hdr.Linkname
		}
	}
	for name, target := range map[string]string{
		"hooks/install.d/10-tool":            "../bin/tool",
		"hooks/static/etc/issue":             "motd",
		"hooks/static/etc/resolv.conf":       "../run/missing",
		"elements/os/install.d/10-tool":      "../bin/tool",
		"elements/os/post-install.d":         "common",
		"elements/os/static/etc/resolv.conf": "../run/missing",
	} {
		if links[name] != target {
			t.Errorf("%s: link to %q, want %q", name, links[name], target)
		}
	}
}

// A file hard-linked from outside the tree is refused: its other name
// may be any file of the user's.
func TestElementTreeHardLinkOutIsRefused(t *testing.T) {
	host := secret(t)
	root := elementtest.WriteTree(t, map[string]string{"os/element-provides": "operating-system\n"})
	os.MkdirAll(filepath.Join(root, "os", "static", "root"), 0o755)
	if err := os.Link(host, filepath.Join(root, "os", "static", "root", "key")); err != nil {
		t.Skipf("cannot make a hard link here: %v", err)
	}
	lib, _ := NewLibrary(root, nil)
	_, err := Expand(lib, []string{"os"})
	if err == nil || !strings.Contains(err.Error(), "static/root/key") || !strings.Contains(err.Error(), "1 of them outside the element") {
		t.Errorf("want the hard link refused, naming it, got %v", err)
	}
}

// A named pipe where a hook should be would hang the host's read of it:
// it is refused at once.
func TestElementTreeSpecialFilesAreRefused(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{"os/element-provides": "operating-system\n"})
	os.MkdirAll(filepath.Join(root, "os", "install.d"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(root, "os", "install.d", "50-pipe"), 0o755); err != nil {
		t.Fatal(err)
	}
	lib, _ := NewLibrary(root, nil)
	done := make(chan error, 1)
	go func() { _, err := Expand(lib, []string{"os"}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "install.d/50-pipe: is a named pipe") {
			t.Errorf("want the pipe refused, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading an element with a named pipe hung")
	}
}

// An element's own directory may be a link within its ELEMENTS_PATH
// entry, but not out of it: a cloned tree could otherwise hold a link to
// any directory of the user's, say ~/.ssh, and name it as an element.
func TestElementDirectoryLinks(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{"real-os/element-provides": "operating-system\n", "real-os/root.d/10-x*": "#!/bin/sh\n"})
	if err := os.Symlink("real-os", filepath.Join(root, "os")); err != nil {
		t.Fatal(err)
	}
	els := expandTree(t, root, "os")
	h, err := MergeHooks(els)
	if err != nil {
		t.Fatal(err)
	}
	if run, _ := h.Phase("root.d"); len(run) != 1 {
		t.Errorf("root.d runs %v", run)
	}

	private := elementtest.WriteTree(t, map[string]string{"id_ed25519": "PRIVATE KEY\n", "root.d/10-x*": "#!/bin/sh\n"})
	os.Symlink(private, filepath.Join(root, "steal"))
	os.WriteFile(filepath.Join(root, "real-os", "element-deps"), []byte("steal\n"), 0o644)
	lib, _ := NewLibrary(root, nil)
	_, err = Expand(lib, []string{"os"})
	var esc *EscapeError
	if !errors.As(err, &esc) || !strings.Contains(err.Error(), "steal -> "+private) || !strings.Contains(err.Error(), "out of its ELEMENTS_PATH entry") {
		t.Errorf("want the linked directory refused, naming the link, got %v", err)
	}
}

// A file swapped for a pipe after the tree was checked fails the read at
// once, rather than block the host on a pipe with no writer.
func TestElementTreePipeSwappedInLater(t *testing.T) {
	root := elementtest.WriteTree(t, map[string]string{"os/element-provides": "operating-system\n", "os/install.d/50-x*": "#!/bin/sh\n"})
	els := expandTree(t, root, "os")
	h, err := MergeHooks(els)
	if err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(root, "os", "install.d", "50-x")
	os.Remove(hook)
	if err := syscall.Mkfifo(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- WriteTar(io.Discard, els, h) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "is a named pipe, not a file") {
			t.Errorf("want the pipe refused, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a pipe swapped into an element hung")
	}
}
