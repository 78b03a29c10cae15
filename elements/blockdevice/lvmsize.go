package blockdevice

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
)

// pvMetadata is what LVM keeps at the start of a physical volume before
// its first extent: its label and metadata area, 1 MiB by default.
const pvMetadata = mib

// CheckVolumes checks that the logical volumes fit their groups, given
// the size in bytes of each partition by name, as lvcreate would find
// them: a group has the whole extents of its physical volumes, each a
// partition less LVM's first MiB; volumes take their extents in order,
// a percentage of the group (%VG, %PVS) or of what is still free
// (%FREE) rounded down; a thin pool two extents more, for its metadata
// and the spare; a thin volume none, its size being virtual.
func CheckVolumes(l *api.Layout, partBytes map[string]int64) error {
	if l.LVM == nil {
		return nil
	}
	free := map[string]int64{}
	total := map[string]int64{}
	for _, vg := range l.LVM.VGs {
		for _, b := range vg.Bases {
			for _, pv := range l.LVM.PVs {
				if pv.Name == b {
					total[vg.Name] += max(partBytes[pv.Base]-pvMetadata, 0) / api.ExtentBytes
				}
			}
		}
		free[vg.Name] = total[vg.Name]
	}
	for _, lv := range l.LVM.LVs {
		if lv.Type == "thin" {
			continue // its size is virtual: a pool may be overcommitted
		}
		n := lv.Size / api.ExtentBytes
		if lv.Extents != "" {
			num, unit, _ := strings.Cut(lv.Extents, "%")
			k, _ := strconv.ParseInt(num, 10, 64)
			switch unit {
			case "":
				n = k
			case "FREE":
				n = free[lv.VG] * k / 100
			default:
				n = total[lv.VG] * k / 100
			}
		}
		if lv.Type == "thin-pool" {
			// lvcreate adds the pool's metadata and a spare of it, an
			// extent each for the pools DIB's layouts make.
			n += 2
		}
		if n == 0 || n > free[lv.VG] {
			return fmt.Errorf("lv %s: needs %d MiB, vg %s has %d MiB free of %d MiB: make the pvs' partitions larger (or the image, DIB_IMAGE_SIZE) or the volumes smaller",
				lv.Name, n*api.ExtentBytes/mib, lv.VG, free[lv.VG]*api.ExtentBytes/mib, total[lv.VG]*api.ExtentBytes/mib)
		}
		free[lv.VG] -= n
	}
	return nil
}

// fixedPVs says whether every physical volume is on a partition of fixed
// size, so that the volumes can be checked before the image's size is
// known; it gives the partitions' sizes.
func fixedPVs(l *api.Layout) (map[string]int64, bool) {
	sizes := map[string]int64{}
	for _, p := range l.Partitions {
		sizes[p.Name] = p.Size.Bytes
	}
	for _, pv := range l.LVM.PVs {
		if sizes[pv.Base] == 0 {
			return nil, false
		}
	}
	return sizes, true
}
