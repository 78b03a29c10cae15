package fatstamp

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func need(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("this test needs %s (dosfstools, mtools); scripts/install-deps.sh installs them", name)
	return ""
}

// fill makes a FAT filesystem image with mkfs.vfat's invariant values
// and fills it with mtools, which stamps each entry with the clock, as
// the kernel does, unless keepTimes: a deep directory, one of more
// entries than a cluster holds, long names.
func fill(t *testing.T, keepTimes bool, mkfsArgs ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fat.img")
	args := append([]string{"--invariant", "-i", "12345678", "-C", img}, mkfsArgs...)
	if out, err := exec.Command(need(t, "mkfs.vfat"), args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	src := t.TempDir()
	many := filepath.Join(src, "EFI", "many")
	if err := os.MkdirAll(filepath.Join(src, "EFI", "BOOT", "deep", "er"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(many, 0o755)
	os.WriteFile(filepath.Join(src, "EFI", "BOOT", "BOOTX64.EFI"), []byte("boot"), 0o644)
	os.WriteFile(filepath.Join(src, "EFI", "BOOT", "deep", "er", "a file with a long name.cfg"), []byte("x"), 0o644)
	for i := range 60 {
		os.WriteFile(filepath.Join(many, fmt.Sprintf("entry number %02d with a long name", i)), []byte{byte(i)}, 0o644)
	}
	old := time.Date(2020, 5, 6, 7, 8, 10, 0, time.UTC)
	filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })
	mcopy := []string{"-s", "-i", img, filepath.Join(src, "EFI"), "::/"}
	if keepTimes {
		mcopy = append([]string{"-m"}, mcopy...)
	}
	cmd := exec.Command(need(t, "mcopy"), mcopy...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	return img
}

// Two FAT filesystems filled with the same files a second apart differ
// until stamped, and are the same bytes after, every time after the
// epoch clamped to it; fsck.fat finds nothing wrong; an earlier
// modification time stays.
func TestStampMakesFillsIdentical(t *testing.T) {
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"FAT12", []string{"2048"}},
		{"FAT16", []string{"-F", "16", "32768"}},
		{"FAT32", []string{"-F", "32", "-s", "1", "40960"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			first := fill(t, false, c.args...)
			time.Sleep(2100 * time.Millisecond) // FAT's times are of two seconds
			second := fill(t, false, c.args...)
			a, _ := os.ReadFile(first)
			b, _ := os.ReadFile(second)
			if bytes.Equal(a, b) {
				t.Fatal("the two fills are the same before stamping: the test shows nothing")
			}
			for _, img := range []string{first, second} {
				if err := Stamp(img, epoch); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(need(t, "fsck.fat"), "-n", img).CombinedOutput(); err != nil {
					t.Errorf("fsck.fat -n: %v\n%s", err, out)
				}
			}
			a, _ = os.ReadFile(first)
			b, _ = os.ReadFile(second)
			if !bytes.Equal(a, b) {
				t.Error("stamped fills differ")
			}
			cmd := exec.Command(need(t, "mdir"), "-i", first, "::/EFI/many")
			cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "entry number 59 with a long name") || !strings.Contains(string(out), "2025-01-01") {
				t.Errorf("mdir ::/EFI/many after stamping: %v\n%s", err, out)
			}
		})
	}
	// An earlier time stays.
	img := fill(t, true, "2048")
	if err := Stamp(img, epoch); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(need(t, "mdir"), "-i", img, "::/EFI/BOOT")
	cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
	if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "2020-05-06") || strings.Contains(string(out), "2025-") {
		t.Errorf("the files' own time, 2020-05-06, did not stay:\n%s", out)
	}
}
