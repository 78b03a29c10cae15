package reproducible

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Tidy removes the run-to-run files, leaves a link in their place and
// what is not theirs alone, empties machine-id, and clamps every time,
// of links too, while an earlier time stays.
func TestTidy(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("var/log/dpkg.log", "installed at 12:03")
	write("var/log/apt/history.log", "Start-Date: today")
	write("var/cache/ldconfig/aux-cache", "inode times")
	write("var/lib/dpkg/status-old", "old")
	write("var/lib/dpkg/status", "kept")
	write("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
	write("usr/share/doc/old", "from a package")
	os.MkdirAll(filepath.Join(root, "var/lib/dbus"), 0o755)
	os.Symlink("/etc/machine-id", filepath.Join(root, "var/lib/dbus/machine-id"))
	os.Symlink("old", filepath.Join(root, "usr/share/doc/link"))
	old := time.Unix(1500000000, 0)
	os.Chtimes(filepath.Join(root, "usr/share/doc/old"), old, old)
	epoch := time.Unix(1700000000, 0)

	removed, err := Tidy(root, epoch)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/var/log/dpkg.log", "/var/log/apt/history.log", "/var/cache/ldconfig/aux-cache", "/var/lib/dpkg/status-old"}
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	for _, gone := range []string{"var/log/dpkg.log", "var/lib/dpkg/status-old"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s is still there", gone)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "var/lib/dbus/machine-id")); err != nil {
		t.Errorf("dbus's link to machine-id went: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(b) != 0 {
		t.Errorf("machine-id kept %q", b)
	}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if info.ModTime().After(epoch) {
			t.Errorf("%s is of %v, after the epoch", p, info.ModTime())
		}
		return nil
	})
	if info, _ := os.Stat(filepath.Join(root, "usr/share/doc/old")); !info.ModTime().Equal(old) {
		t.Errorf("an earlier time changed: %v", info.ModTime())
	}
}

// Preset writes the iSCSI initiator file for the first boot to name,
// leaves one there alone, and Tidy removes it where nothing installed
// reads it, and keeps it where something does.
func TestPresetIdentities(t *testing.T) {
	root := t.TempDir()
	if err := Preset(root); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(root, "etc/iscsi/initiatorname.iscsi")
	if b, _ := os.ReadFile(name); string(b) != "GenerateName=yes\n" {
		t.Fatalf("preset %q", b)
	}
	if _, err := Tidy(root, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/iscsi")); !os.IsNotExist(err) {
		t.Errorf("the preset stayed with no open-iscsi: %v", err)
	}

	Preset(root)
	os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/sbin/iscsi-iname"), nil, 0o755)
	if _, err := Tidy(root, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(name); string(b) != "GenerateName=yes\n" {
		t.Errorf("with open-iscsi installed: %q", b)
	}

	os.WriteFile(name, []byte("InitiatorName=iqn.mine\n"), 0o600)
	Preset(root)
	if b, _ := os.ReadFile(name); string(b) != "InitiatorName=iqn.mine\n" {
		t.Errorf("a name already there was replaced: %q", b)
	}
}
