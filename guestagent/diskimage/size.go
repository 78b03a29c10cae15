package diskimage

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

const mib = 1 << 20

// Size sizes the image as disk-image-create does: the tree's du
// divided by 0.6 (or plus DIB_IMAGE_EXTRA_SIZE GB), plus the ext4
// journal, plus 525 MiB for block-device-efi's large ESP, rounded up to
// 64 KiB; or DIB_IMAGE_SIZE GB exactly. It never returns less than the
// fixed-size partitions, the tree and the journal need; mke2fs places a
// journal only in at most half the free blocks, and -i 4096 spends a
// sixteenth of them on inodes, so the journal counts 2.25 times.
func Size(treeBytes int64, s *api.Spec) int64 {
	const kib = 1024
	var journal int64
	if s.Layout.Root().Type == "ext4" {
		journal = journalMiB(s) * mib
	}
	var size int64
	if s.ImageSizeGB > 0 {
		size = int64(s.ImageSizeGB * (1 << 30))
	} else {
		if s.ExtraSizeGB > 0 {
			size = treeBytes + int64(s.ExtraSizeGB*(1<<30))
		} else {
			size = int64(float64(treeBytes) / 0.6)
		}
		size += journal
		for _, e := range s.Elements {
			if strings.Contains(e, "block-device-efi") { // as DIB matches it, -lvm too
				size += 525 * mib
			}
		}
	}
	// Each partition may lose up to a MiB to alignment and an EBR, each
	// logical volume up to an extent and its physical volume's MiB.
	least := blockdevice.Fixed(s.Layout) + treeBytes + treeBytes/10 + journal*9/4 + int64(len(s.Layout.Partitions)+2)*mib
	if lvm := s.Layout.LVM; lvm != nil {
		least += int64(len(lvm.LVs))*api.ExtentBytes + int64(len(lvm.PVs))*mib
	}
	if size < least {
		size = least
	}
	return (size + 64*kib - 1) / (64 * kib) * (64 * kib)
}

// journalMiB is the ext4 root's journal: DIB_JOURNAL_SIZE, else DIB's
// 64 MiB, large enough for the resizes a cloud image sees.
func journalMiB(s *api.Spec) int64 {
	if s.JournalMiB > 0 {
		return int64(s.JournalMiB)
	}
	return 64
}

// TreeSize is what du counts for the tree at dir (disk usage, not
// apparent size), as DIB sizes its images.
func TreeSize(run toolrun.Runner, dir string) (int64, error) {
	out, err := run.Output("du", "-x", "-s", "-B1", dir)
	if err != nil {
		return 0, fmt.Errorf("du %s: %w", dir, err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0, fmt.Errorf("du %s: no output", dir)
	}
	return strconv.ParseInt(f[0], 10, 64)
}
