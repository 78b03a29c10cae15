package diskimage

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

// A reproducible build's image: the partition table and filesystems
// carry the layout's seeded identifiers; Remake zeroes each device,
// makes the ESP again and fills it with mtools in name order before
// stamping it,
// makes the root with mke2fs -d from the tree less the ESP's files, and
// puts the tree back whole, its times as they were.
func TestRemakeAReproducibleEFIImage(t *testing.T) {
	epoch := int64(1700000000)
	l := efiLayout()
	l.DiskID = "11111111-2222-8333-8444-555555555555"
	l.Partitions[0].UUID = "aaaaaaaa-2222-8333-8444-555555555555"
	l.Partitions[0].FS.UUID = "ABCD-1234"
	l.Partitions[2].FS.UUID = "cccccccc-2222-8333-8444-555555555555"
	spec := &api.Spec{Layout: l, RootLabel: "cloudimg-rootfs", MaxOnlineResize: 4096, SourceDateEpoch: &epoch}
	m, run, mounts := fakeMaker(t, spec)
	var stamped []string
	m.StampFAT = func(dev string, e time.Time) error {
		if e.Unix() != epoch {
			t.Errorf("stamped with %v", e)
		}
		stamped = append(stamped, dev)
		return nil
	}
	reply := run.Reply
	run.Reply = func(call []string) ([]byte, error) {
		if call[0] == "mke2fs" {
			return []byte("mke2fs 1.47.2 (1-Jan-2025)\n\tUsing EXT2FS Library version 1.47.2\n"), nil
		}
		return reply(call)
	}
	img, err := m.Make("/dev/vdc", 512*mib)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(run.Stdins[1], "label-id: "+l.DiskID+"\n") || !strings.Contains(run.Stdins[1], `name="ESP", uuid=`+l.Partitions[0].UUID+"\n") {
		t.Errorf("sfdisk script without the seeded identifiers:\n%s", run.Stdins[1])
	}
	tree := filepath.Join(t.TempDir(), "built")
	files := map[string]string{"etc/hostname": "h\n", "boot/efi/EFI/BOOT/BOOTX64.EFI": "x", "boot/efi/EFI/debian/grub.cfg": "y"}
	for name, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, name)), 0o755)
		os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644)
	}
	then := time.Unix(1600000000, 0)
	os.Chtimes(filepath.Join(tree, "boot"), then, then)
	before := len(run.Calls)
	*mounts = nil
	if err := img.Remake(tree, io.Discard); err != nil {
		t.Fatal(err)
	}
	loop, esp := img.Loop, tree+".fs0"
	env := "env SOURCE_DATE_EPOCH=1700000000 E2FSPROGS_FAKE_TIME=1700000000 "
	want := []string{
		"mke2fs -V",
		"blkdiscard --zeroout " + loop + "p1",
		env + "mkfs.vfat --invariant -n EFI -i ABCD1234 " + loop + "p1",
		"env MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1 TZ=UTC mmd -i " + loop + "p1 ::/EFI",
		"env MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1 TZ=UTC mmd -i " + loop + "p1 ::/EFI/BOOT",
		"env MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1 TZ=UTC mcopy -i " + loop + "p1 -m -o " + esp + "/EFI/BOOT/BOOTX64.EFI ::/EFI/BOOT/BOOTX64.EFI",
		"env MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1 TZ=UTC mmd -i " + loop + "p1 ::/EFI/debian",
		"env MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1 TZ=UTC mcopy -i " + loop + "p1 -m -o " + esp + "/EFI/debian/grub.cfg ::/EFI/debian/grub.cfg",
		"blkdiscard --zeroout " + loop + "p3",
		"blockdev --getsize64 " + loop + "p3",
		env + "mkfs.ext4 -F -q -L cloudimg-rootfs -U " + l.Partitions[2].FS.UUID + " -i 4096 -E resize=4096,hash_seed=" + l.Partitions[2].FS.UUID + " -d " + tree + " " + loop + "p3",
	}
	if got := run.Lines()[before:]; !slices.Equal(got, want) {
		t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantMounts := []string{"umount " + filepath.Join(m.Target, "boot/efi"), "umount " + m.Target}
	if !slices.Equal(*mounts, wantMounts) {
		t.Errorf("mounts %q, want %q", *mounts, wantMounts)
	}
	if !slices.Equal(stamped, []string{loop + "p1"}) {
		t.Errorf("stamped %q", stamped)
	}
	for name, content := range files {
		if b, err := os.ReadFile(filepath.Join(tree, name)); string(b) != content {
			t.Errorf("the tree lacks %s after: %q %v", name, b, err)
		}
	}
	if info, err := os.Stat(filepath.Join(tree, "boot")); err != nil || !info.ModTime().Equal(then) {
		t.Errorf("/boot's time changed: %v %v", info.ModTime(), err)
	}
}

// An mke2fs that copies change times as it finds them is refused,
// before anything is unmounted.
func TestRemakeRefusesAnOldMke2fs(t *testing.T) {
	epoch := int64(1700000000)
	m, run, mounts := fakeMaker(t, &api.Spec{Layout: efiLayout(), SourceDateEpoch: &epoch})
	img, err := m.Make("/dev/vdc", 512*mib)
	if err != nil {
		t.Fatal(err)
	}
	reply := run.Reply
	run.Reply = func(call []string) ([]byte, error) {
		if call[0] == "mke2fs" {
			return []byte("mke2fs 1.47.0 (5-Feb-2023)\n"), nil
		}
		return reply(call)
	}
	*mounts = nil
	err = img.Remake(t.TempDir(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "needs mke2fs 1.47.1 or later in the helper") || !strings.Contains(err.Error(), "it has 1.47.0") {
		t.Errorf("Remake with mke2fs 1.47.0: %v", err)
	}
	if len(*mounts) > 0 {
		t.Errorf("unmounted %q before refusing", *mounts)
	}
}

// mke2fs keeps only the last -E: the seed joins the one there is.
func TestWithExtended(t *testing.T) {
	if got := withExtended([]string{"mkfs.ext4", "-E", "a=1", "-E", "b=2"}, "c=3"); !slices.Equal(got, []string{"mkfs.ext4", "-E", "a=1", "-E", "b=2,c=3"}) {
		t.Errorf("got %q", got)
	}
	if got := withExtended([]string{"mkfs.ext4", "-Ea=1", "-F"}, "c=3"); !slices.Equal(got, []string{"mkfs.ext4", "-Ea=1,c=3", "-F"}) {
		t.Errorf("got %q", got)
	}
	if got := withExtended([]string{"mkfs.ext4", "-F"}, "c=3"); !slices.Equal(got, []string{"mkfs.ext4", "-F", "-E", "c=3"}) {
		t.Errorf("got %q", got)
	}
}
