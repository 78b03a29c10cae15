package initramfs

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestTreeMergedUsrAndLinks(t *testing.T) {
	tr := NewTree()
	add := func(h *tar.Header, body string) {
		t.Helper()
		if err := tr.AddTarEntry(h, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "./bin/sh", Typeflag: tar.TypeReg, Mode: 0o755}, "#!")
	add(&tar.Header{Name: "./usr/bin/mount", Typeflag: tar.TypeReg, Mode: 0o4755}, "m")
	add(&tar.Header{Name: "./sbin/mount.alias", Typeflag: tar.TypeLink, Linkname: "./usr/bin/mount", Mode: 0o755}, "")
	add(&tar.Header{Name: "./lib64/ld.so", Typeflag: tar.TypeSymlink, Linkname: "/usr/lib/ld.so"}, "")
	add(&tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar}, "")

	if n, ok := tr.Get("usr/bin/sh"); !ok || string(n.Data) != "#!" {
		t.Errorf("/bin/sh did not land in /usr/bin")
	}
	if n, ok := tr.Get("bin"); !ok || n.Link != "usr/bin" {
		t.Errorf("/bin is not the merged-/usr link: %+v", n)
	}
	if n, _ := tr.Get("usr/bin/mount"); n.Mode&fs.ModeSetuid == 0 {
		t.Errorf("setuid bit lost: %v", n.Mode)
	}
	if n, ok := tr.Get("usr/sbin/mount.alias"); !ok || string(n.Data) != "m" {
		t.Errorf("hard link not copied")
	}
	if n, ok := tr.Get("usr/lib64/ld.so"); !ok || n.Link != "/usr/lib/ld.so" {
		t.Errorf("symlink under /lib64 not kept")
	}
	if _, ok := tr.Get("dev/null"); ok {
		t.Errorf("device node should be skipped")
	}
	err := tr.AddTarEntry(&tar.Header{Name: "x", Typeflag: tar.TypeLink, Linkname: "nowhere"}, nil)
	if err == nil {
		t.Errorf("hard link to a missing file accepted")
	}
}

func TestWriteCPIORoundTrip(t *testing.T) {
	tr := NewTree()
	tr.WriteFile("etc/hostname", []byte("dibvm\n"), 0o644)
	tr.WriteFile("usr/bin/tool", []byte("elf"), fs.ModeSetuid|0o755)
	tr.Symlink("../proc/self/mounts", "etc/mtab")
	var buf bytes.Buffer
	if err := tr.WriteCPIO(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	var order []string
	for _, r := range recs {
		got[r.Name] = r
		order = append(order, r.Name)
	}
	for name, mode := range map[string]uint64{
		"etc":          cpio.S_IFDIR | 0o755,
		"etc/hostname": cpio.S_IFREG | 0o644,
		"usr/bin/tool": cpio.S_IFREG | 0o4755,
		"etc/mtab":     cpio.S_IFLNK | 0o777,
		"bin":          cpio.S_IFLNK | 0o777,
	} {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s missing from archive (have %v)", name, order)
			continue
		}
		if r.Mode != mode {
			t.Errorf("%s mode %o, want %o", name, r.Mode, mode)
		}
	}
	// Parents come before children, or the kernel cannot create them.
	seen := map[string]bool{}
	for _, n := range order {
		if i := strings.LastIndex(n, "/"); i > 0 && !seen[n[:i]] {
			t.Errorf("%s comes before its directory", n)
		}
		seen[n] = true
	}
}
