package blockdevice

import (
	"fmt"

	"github.com/dibvm/dibvm/guestagent/api"
)

const (
	sector = 512
	mib    = 1 << 20
)

// Extent is where a partition lies on the disk, in 512-byte sectors.
type Extent struct {
	Number int   // the kernel's partition number: logical ones start at 5
	Start  int64 // first sector
	Size   int64 // sectors
}

// Plan is a layout placed on a disk of a given size: one extent for each
// partition, in layout order, and for an MBR with logical partitions the
// extended partition that holds them.
type Plan struct {
	Partitions []Extent
	Extended   *Extent
}

// Place lays the partitions out on a disk of diskBytes as DIB does, so
// that an image has the partition table DIB would give it.
//
// Every partition starts on the alignment (1 MiB unless the
// configuration says). A percentage is of the space still free when the
// partition is placed. On an MBR the extended partition runs from the
// first logical partition to the end of the disk, and each logical
// partition starts one alignment after its extended boot record. On a
// GPT sizes are whole MiB, as DIB asks sgdisk for them, and 2 MiB stay
// free for the two headers.
//
// The logical volumes of an lvm node must fit their groups on the
// partitions so placed (CheckVolumes).
func Place(l *api.Layout, diskBytes int64) (*Plan, error) {
	place := placeMBR
	if l.Label == "gpt" {
		place = placeGPT
	}
	plan, err := place(l, diskBytes)
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for i, e := range plan.Partitions {
		sizes[l.Partitions[i].Name] = e.Size * sector
	}
	if err := CheckVolumes(l, sizes); err != nil {
		return nil, fmt.Errorf("on a %d MiB image: %w", diskBytes/mib, err)
	}
	return plan, nil
}

func placeMBR(l *api.Layout, diskBytes int64) (*Plan, error) {
	align := alignment(l) / sector
	disk := diskBytes / sector
	next := align // the first free sector, on the alignment
	plan := &Plan{}
	primary := 0
	for i := range l.Partitions {
		p := &l.Partitions[i]
		free := (disk - next - align) * sector
		size, err := sizeOf(p.Size, free)
		if err != nil {
			return nil, tooBig(p, err, diskBytes)
		}
		length := size / sector
		e := Extent{Start: next, Size: length}
		if p.Primary() {
			primary++
			e.Number = primary
		} else {
			if plan.Extended == nil {
				plan.Extended = &Extent{Number: primary + 1, Start: next, Size: disk - next}
			}
			e.Number = 5 + len(plan.Partitions) - primary
			e.Start = next + align // after the extended boot record
		}
		if e.Start+e.Size > disk {
			return nil, tooBig(p, fmt.Errorf("needs %d MiB, %d MiB are free", size/mib, (disk-e.Start)*sector/mib), diskBytes)
		}
		plan.Partitions = append(plan.Partitions, e)
		next = roundUp(e.Start+e.Size, align)
	}
	return plan, nil
}

func placeGPT(l *api.Layout, diskBytes int64) (*Plan, error) {
	align := alignment(l) / sector
	free := diskBytes - 2*mib
	next := align
	plan := &Plan{}
	for i := range l.Partitions {
		p := &l.Partitions[i]
		size, err := sizeOf(p.Size, free)
		if err != nil {
			return nil, tooBig(p, err, diskBytes)
		}
		e := Extent{Number: i + 1, Start: next, Size: size / mib * mib / sector}
		if e.Size == 0 {
			return nil, fmt.Errorf("partition %s: %d bytes is less than the 1 MiB a GPT partition takes", p.Name, size)
		}
		if lastUsable := diskBytes/sector - 34; e.Start+e.Size > lastUsable {
			return nil, tooBig(p, fmt.Errorf("ends past the backup GPT"), diskBytes)
		}
		plan.Partitions = append(plan.Partitions, e)
		free -= size
		next = roundUp(e.Start+e.Size, align)
	}
	return plan, nil
}

// sizeOf is the size in bytes, given the bytes still free.
func sizeOf(s api.Size, free int64) (int64, error) {
	size := s.Bytes
	if s.Percent > 0 {
		size = int64(float64(free) * s.Percent / 100)
	}
	if size > free {
		return 0, fmt.Errorf("needs %d MiB, %d MiB are free", size/mib, free/mib)
	}
	if size < sector {
		return 0, fmt.Errorf("gets %d bytes, less than a sector", size)
	}
	return size, nil
}

func tooBig(p *api.Partition, err error, diskBytes int64) error {
	return fmt.Errorf("partition %s on a %d MiB image: %v: raise DIB_IMAGE_SIZE, or size the partitions that come before it smaller", p.Name, diskBytes/mib, err)
}

func alignment(l *api.Layout) int64 {
	if l.Align > 0 {
		return l.Align
	}
	return mib
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
