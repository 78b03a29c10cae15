package diskimage

import (
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

func TestImageSizeAsDIB(t *testing.T) {
	ext4Root := &api.Layout{Label: "mbr", Partitions: []api.Partition{
		{Name: "root", Size: api.Size{Percent: 100}, FS: &api.Filesystem{Type: "ext4", MountPoint: "/"}}}}
	efi := &api.Layout{Label: "gpt", Partitions: []api.Partition{
		{Name: "ESP", Size: api.Size{Bytes: 550 * mib}, FS: &api.Filesystem{Type: "vfat", MountPoint: "/boot/efi"}},
		{Name: "BSP", Size: api.Size{Bytes: 8 * mib}},
		{Name: "root", Size: api.Size{Percent: 100}, FS: &api.Filesystem{Type: "ext4", MountPoint: "/"}}}}
	tree := int64(600 * mib)
	for _, c := range []struct {
		name string
		spec api.Spec
		want int64
	}{
		// du / 0.6 + the 64 MiB journal.
		{"mbr", api.Spec{Layout: ext4Root}, 1000*mib + 64*mib},
		// ... plus 525 MiB for block-device-efi's ESP.
		{"efi", api.Spec{Layout: efi, Elements: []string{"block-device-efi"}}, 1000*mib + 64*mib + 525*mib},
		// DIB_JOURNAL_SIZE replaces the 64 MiB.
		{"journal", api.Spec{Layout: ext4Root, JournalMiB: 128}, 1000*mib + 128*mib},
		{"extra size", api.Spec{Layout: ext4Root, ExtraSizeGB: 1}, 600*mib + 1024*mib + 64*mib},
		{"fixed size", api.Spec{Layout: ext4Root, ImageSizeGB: 2}, 2048 * mib},
		// Never smaller than what the tree needs: tree, 10 %, 2.25 times
		// the journal (mke2fs gives it at most half the free blocks), and
		// a MiB of alignment per partition plus two for the tables.
		{"too small", api.Spec{Layout: ext4Root, ImageSizeGB: 0.1}, 600*mib + 60*mib + 64*mib*9/4 + 3*mib},
	} {
		if got := Size(tree, &c.spec); got != c.want {
			t.Errorf("%s: Size = %d MiB, want %d MiB", c.name, got/mib, c.want/mib)
		}
	}
	if got := Size(1, &api.Spec{Layout: ext4Root}); got%(64<<10) != 0 {
		t.Errorf("size %d is not a multiple of 64 KiB", got)
	}
}
