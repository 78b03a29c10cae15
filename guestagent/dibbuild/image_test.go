package dibbuild

import (
	"testing"

	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/guestagent/buildspec"
)

func TestImageSizeAsDIB(t *testing.T) {
	ext4Root := &blockdevice.Layout{Label: "mbr", Partitions: []blockdevice.Partition{
		{Name: "root", Size: blockdevice.Size{Percent: 100}, FS: &blockdevice.Filesystem{Type: "ext4", MountPoint: "/"}}}}
	efi := &blockdevice.Layout{Label: "gpt", Partitions: []blockdevice.Partition{
		{Name: "ESP", Size: blockdevice.Size{Bytes: 550 * mib}, FS: &blockdevice.Filesystem{Type: "vfat", MountPoint: "/boot/efi"}},
		{Name: "BSP", Size: blockdevice.Size{Bytes: 8 * mib}},
		{Name: "root", Size: blockdevice.Size{Percent: 100}, FS: &blockdevice.Filesystem{Type: "ext4", MountPoint: "/"}}}}
	tree := int64(600 * mib)
	for _, c := range []struct {
		name string
		spec buildspec.Spec
		want int64
	}{
		// du / 0.6 + the 64 MiB journal.
		{"mbr", buildspec.Spec{Layout: ext4Root}, 1000*mib + 64*mib},
		// ... plus 525 MiB for block-device-efi's ESP.
		{"efi", buildspec.Spec{Layout: efi, Elements: []string{"block-device-efi"}}, 1000*mib + 64*mib + 525*mib},
		// DIB_JOURNAL_SIZE replaces the 64 MiB.
		{"journal", buildspec.Spec{Layout: ext4Root, JournalMiB: 128}, 1000*mib + 128*mib},
		{"extra size", buildspec.Spec{Layout: ext4Root, ExtraSizeGB: 1}, 600*mib + 1024*mib + 64*mib},
		{"fixed size", buildspec.Spec{Layout: ext4Root, ImageSizeGB: 2}, 2048 * mib},
		// Never smaller than what the tree needs: tree, 10 %, 2.25 times
		// the journal (mke2fs gives it at most half the free blocks), and
		// a MiB of alignment per partition plus two for the tables.
		{"too small", buildspec.Spec{Layout: ext4Root, ImageSizeGB: 0.1}, 600*mib + 60*mib + 64*mib*9/4 + 3*mib},
	} {
		if got := imageSize(tree, &c.spec); got != c.want {
			t.Errorf("%s: imageSize = %d MiB, want %d MiB", c.name, got/mib, c.want/mib)
		}
	}
	if got := imageSize(1, &buildspec.Spec{Layout: ext4Root}); got%(64<<10) != 0 {
		t.Errorf("size %d is not a multiple of 64 KiB", got)
	}
}
