package api

import "slices"

// Layout is a disk to build: one local loop image, its partition table,
// and the filesystems, mount points and fstab entries of its partitions.
// The host reads it from DIB's block device configuration
// (elements/blockdevice) and checks it; the guest places and makes it.
type Layout struct {
	Image      string      `json:"image"` // the local_loop name
	Label      string      `json:"label"` // mbr or gpt
	Align      int64       `json:"align"` // partition alignment in bytes
	Partitions []Partition `json:"partitions"`
}

// Partition is one partition and what goes on it.
type Partition struct {
	Name  string      `json:"name"`
	Flags []string    `json:"flags,omitempty"` // boot, primary
	Type  string      `json:"type,omitempty"`  // GPT type code (EF00) or MBR id (0x83)
	Size  Size        `json:"size"`
	FS    *Filesystem `json:"fs,omitempty"`
}

// Size is a partition size: a fixed number of bytes, or, as DIB
// documents, a percentage of the space still free when the partition is
// placed.
type Size struct {
	Bytes   int64   `json:"bytes,omitempty"`
	Percent float64 `json:"percent,omitempty"`
}

// Filesystem is a partition's mkfs, mount and fstab settings.
type Filesystem struct {
	Type         string `json:"type"` // ext4, xfs, vfat, ...
	Label        string `json:"label,omitempty"`
	UUID         string `json:"uuid,omitempty"`
	Options      string `json:"options,omitempty"` // extra mkfs options
	MountPoint   string `json:"mount_point,omitempty"`
	FstabOptions string `json:"fstab_options,omitempty"`
	FsckPassno   int    `json:"fsck_passno,omitempty"`
}

// Primary says whether an MBR partition is a primary one rather than a
// logical one.
func (p *Partition) Primary() bool { return slices.Contains(p.Flags, "primary") }

// Boot says whether the partition carries the boot flag.
func (p *Partition) Boot() bool { return slices.Contains(p.Flags, "boot") }

// Root is the filesystem mounted at /, which a checked layout always has.
func (l *Layout) Root() *Filesystem {
	for _, p := range l.Partitions {
		if p.FS != nil && p.FS.MountPoint == "/" {
			return p.FS
		}
	}
	return nil
}
