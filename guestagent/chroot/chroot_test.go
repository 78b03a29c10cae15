package chroot

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeTarget is a target in a temporary directory whose mounts are only
// recorded.
func fakeTarget(t *testing.T) (*Target, *[]string) {
	t.Helper()
	var calls []string
	dir := t.TempDir()
	resolver := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolver, []byte("nameserver 10.0.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string {
		if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
			return "T/" + r
		}
		return p
	}
	return &Target{
		Root: dir,
		Mount: func(src, dst, fstype string, flags uintptr, data string) error {
			calls = append(calls, fmt.Sprintf("mount %q %s %q %#x", src, rel(dst), fstype, flags))
			return nil
		},
		Unmount: func(dst string, flags int) error {
			calls = append(calls, fmt.Sprintf("umount %s %#x", rel(dst), flags))
			return nil
		},
		Resolver: resolver,
	}, &calls
}

func TestMountsInOrderUndoneInReverse(t *testing.T) {
	tg, calls := fakeTarget(t)
	if err := tg.MountAll(); err != nil {
		t.Fatal(err)
	}
	tg.UnmountAll()
	tg.UnmountAll() // a second time undoes nothing more
	want := []string{
		`mount "proc" T/proc "proc" 0x0`,
		fmt.Sprintf(`mount "/dev" T/dev "" %#x`, unix.MS_BIND),
		fmt.Sprintf(`mount "/dev/pts" T/dev/pts "" %#x`, unix.MS_BIND),
		fmt.Sprintf(`mount "sysfs" T/sys "sysfs" %#x`, unix.MS_RDONLY),
		fmt.Sprintf("umount T/sys %#x", unix.MNT_DETACH),
		fmt.Sprintf("umount T/dev/pts %#x", unix.MNT_DETACH),
		fmt.Sprintf("umount T/dev %#x", unix.MNT_DETACH),
		fmt.Sprintf("umount T/proc %#x", unix.MNT_DETACH),
	}
	if !slices.Equal(*calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(*calls, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range []string{"proc", "dev/pts", "sys"} {
		if fi, err := os.Stat(filepath.Join(tg.Root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s was not made: %v", d, err)
		}
	}
}

func TestHooksBoundReadOnly(t *testing.T) {
	tg, calls := fakeTarget(t)
	undo, err := tg.BindHooks("/build/hooks")
	if err != nil {
		t.Fatal(err)
	}
	undo()
	want := []string{
		fmt.Sprintf(`mount "/build/hooks" T/tmp/in_target.d "" %#x`, unix.MS_BIND),
		fmt.Sprintf(`mount "" T/tmp/in_target.d "" %#x`, unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY),
		fmt.Sprintf("umount T/tmp/in_target.d %#x", unix.MNT_DETACH),
	}
	if !slices.Equal(*calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(*calls, "\n"), strings.Join(want, "\n"))
	}
}

func TestRunPartsArgs(t *testing.T) {
	tg := &Target{Root: "/build/mnt"}
	got := strings.Join(tg.RunPartsArgs("dib-run-parts", "install.d", []string{"--after", "50-x"}), " ")
	if want := "/build/mnt /tmp/in_target.d/dib-run-parts --after 50-x /tmp/in_target.d/install.d"; got != want {
		t.Errorf("args %s\nwant %s", got, want)
	}
}

// The target's own resolv.conf, a link here, waits while the build
// uses the helper's, and comes back, link and all, when it ends;
// mounting again (a kept tree resumed) keeps the first one saved.
func TestResolvConfSwappedAndRestored(t *testing.T) {
	tg, _ := fakeTarget(t)
	etc := filepath.Join(tg.Root, "etc")
	os.MkdirAll(etc, 0o755)
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(etc, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(tg.Root, "tmp", "junk"), 0o755)
	for range 2 {
		if err := tg.MountAll(); err != nil {
			t.Fatal(err)
		}
		tg.UnmountAll()
		if data, err := os.ReadFile(filepath.Join(etc, "resolv.conf")); err != nil || string(data) != "nameserver 10.0.2.3\n" {
			t.Fatalf("during the build: %q, %v", data, err)
		}
	}
	if err := tg.Finish(); err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(filepath.Join(etc, "resolv.conf")); err != nil || link != "../run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("after: %q, %v", link, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(tg.Root, "tmp")); len(entries) != 0 {
		t.Errorf("/tmp keeps %v", entries)
	}
	if entries, _ := os.ReadDir(etc); len(entries) != 1 {
		t.Errorf("etc holds %v", entries)
	}
}

// A target without a resolv.conf has none again at the end.
func TestResolvConfAbsentStaysAbsent(t *testing.T) {
	tg, _ := fakeTarget(t)
	if err := tg.MountAll(); err != nil {
		t.Fatal(err)
	}
	if err := tg.Finish(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(tg.Root, "etc")); len(entries) != 0 {
		t.Errorf("etc holds %v", entries)
	}
}
