package vmimage

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/vmimage/initramfs"
)

func TestKeep(t *testing.T) {
	for name, want := range map[string]bool{
		"usr/bin/bash":                      true,
		"./usr/share/doc/bash/copyright":    false,
		"usr/share/man/man1/ls.1.gz":        false,
		"usr/share/locale/de/LC_MESSAGES/x": false,
		"usr/share/zoneinfo/UTC":            false,
		"usr/share/doc":                     false, // the directory itself
		"usr/share/docs/x":                  true,
		"usr/share/keyrings/debian.gpg":     true,
		"usr/share/ca-certificates/a.crt":   true,
	} {
		if got := keep(name); got != want {
			t.Errorf("keep(%q) = %v, want %v", name, got, want)
		}
	}
}

// debianTree is the little of an unpacked userland configure reads.
func debianTree() *initramfs.Tree {
	tr := initramfs.NewTree()
	tr.WriteFile("usr/share/base-passwd/passwd.master", []byte("root:*:0:0:root:/root:/bin/sh\n"), 0o644)
	tr.WriteFile("usr/share/base-passwd/group.master", []byte("root:*:0:\n"), 0o644)
	tr.WriteFile("usr/bin/mawk", []byte("mawk"), 0o755)
	tr.WriteFile("usr/bin/which.debianutils", []byte("which"), 0o755)
	tr.WriteFile("usr/share/ca-certificates/mozilla/A.crt", []byte("A"), 0o644)
	tr.WriteFile("usr/share/ca-certificates/mozilla/B.crt", []byte("B\n"), 0o644)
	tr.WriteFile("usr/share/ca-certificates/mozilla/README", []byte("not a certificate"), 0o644)
	tr.WriteFile("usr/lib/udev/hwdb.d/20-usb.hwdb", []byte("hwdb"), 0o644)
	tr.WriteFile("usr/sbin/xfs_scrub", []byte("scrub"), 0o755)
	return tr
}

func TestConfigure(t *testing.T) {
	tr := debianTree()
	tr.WriteFile("usr/bin/gawk", []byte("gawk"), 0o755)
	if err := configure(tr, Spec{BootModules: []string{"virtio_blk", "isofs"}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"etc/passwd":                        "root:*:0:0:root:/root:/bin/sh\n",
		"etc/group":                         "root:*:0:\n",
		"etc/dibvm/modules":                 "virtio_blk\nisofs\n",
		"etc/ssl/certs/ca-certificates.crt": "A\nB\n",
		"etc/hostname":                      "dibvm\n",
	} {
		if n, ok := tr.Get(name); !ok || string(n.Data) != want {
			t.Errorf("%s: %q, want %q", name, n.Data, want)
		}
	}
	for link, want := range map[string]string{
		"usr/sbin/modprobe": "/init",
		"etc/mtab":          "../proc/self/mounts",
		"usr/bin/awk":       "/usr/bin/gawk", // the first candidate present
		"usr/bin/which":     "/usr/bin/which.debianutils",
	} {
		if n, ok := tr.Get(link); !ok || n.Mode&fs.ModeSymlink == 0 || n.Link != want {
			t.Errorf("%s: want a link to %s", link, want)
		}
	}
	if n, ok := tr.Get("tmp"); !ok || n.Mode != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("/tmp is not a sticky directory open to all")
	}
	if n, ok := tr.Get("usr/local/bin/sudo"); !ok || !strings.HasPrefix(string(n.Data), "#!/bin/sh\n") || n.Mode.Perm() != 0o755 {
		t.Error("no sudo shim")
	}
	for _, gone := range []string{"usr/lib/udev/hwdb.d", "usr/sbin/xfs_scrub"} {
		if _, ok := tr.Get(gone); ok {
			t.Errorf("%s is still in the tree", gone)
		}
	}
}

// An alternative's link already shipped is left alone; mawk stands in
// for gawk when there is no gawk.
func TestAlternatives(t *testing.T) {
	tr := debianTree()
	tr.Symlink("/usr/bin/original-awk", "usr/bin/awk")
	alternatives(tr)
	if n, _ := tr.Get("usr/bin/awk"); n.Link != "/usr/bin/original-awk" {
		t.Errorf("awk was replaced: %s", n.Link)
	}
	if n, ok := tr.Get("usr/bin/nawk"); !ok || n.Link != "/usr/bin/mawk" {
		t.Errorf("nawk does not point at mawk")
	}
}

func TestConfigureNeedsBasePasswd(t *testing.T) {
	tr := initramfs.NewTree()
	if err := configure(tr, Spec{}); err == nil || !strings.Contains(err.Error(), "base-passwd ships no") {
		t.Errorf("configure without base-passwd: %v", err)
	}
}

// No certificates, no bundle: an empty one would fail every TLS check.
func TestCABundleEmpty(t *testing.T) {
	tr := initramfs.NewTree()
	caBundle(tr)
	if _, ok := tr.Get("etc/ssl/certs/ca-certificates.crt"); ok {
		t.Error("an empty CA bundle was written")
	}
}
