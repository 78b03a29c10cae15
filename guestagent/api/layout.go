package api

import (
	"slices"
	"strings"
)

// Layout is a disk to build: one local loop image, its partition table,
// and the filesystems, mount points and fstab entries of its partitions.
// The host reads it from DIB's block device configuration
// (elements/blockdevice) and checks it; the guest places and makes it.
type Layout struct {
	Image string `json:"image"` // the local_loop name
	Label string `json:"label"` // mbr or gpt
	Align int64  `json:"align"` // partition alignment in bytes
	// DiskID is the partition table's identifier (a GPT's disk GUID, an
	// MBR's 0x-prefixed 32-bit signature), random when empty.
	DiskID     string      `json:"disk_id,omitempty"`
	Partitions []Partition `json:"partitions"`
	LVM        *LVM        `json:"lvm,omitempty"`
}

// Partition is one partition and what goes on it.
type Partition struct {
	Name  string      `json:"name"`
	Flags []string    `json:"flags,omitempty"` // boot, primary
	Type  string      `json:"type,omitempty"`  // GPT type code (EF00) or MBR id (0x83)
	Size  Size        `json:"size"`
	FS    *Filesystem `json:"fs,omitempty"`
	// UUID is a GPT partition's unique GUID, random when empty.
	UUID string `json:"uuid,omitempty"`
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
	for _, d := range l.Devices() {
		if d.FS != nil && d.FS.MountPoint == "/" {
			return d.FS
		}
	}
	return nil
}

// LVM is the layout's DIB lvm node: physical volumes on partitions,
// volume groups over them, and logical volumes in the groups, made in
// that order after the partitions.
type LVM struct {
	PVs []PhysicalVolume `json:"pvs"`
	VGs []VolumeGroup    `json:"vgs"`
	LVs []LogicalVolume  `json:"lvs"`
}

// PhysicalVolume is a partition given to LVM.
type PhysicalVolume struct {
	Name    string   `json:"name"`
	Base    string   `json:"base"`              // the partition's name
	Options []string `json:"options,omitempty"` // pvcreate's, after the device
}

// VolumeGroup is a volume group over physical volumes.
type VolumeGroup struct {
	Name    string   `json:"name"`
	Bases   []string `json:"bases"`             // the physical volumes' names
	Options []string `json:"options,omitempty"` // vgcreate's, after the devices
}

// LogicalVolume is a logical volume in a group and what goes on it. Its
// size is Size (bytes, rounded down to whole extents as DIB does), or
// Extents as lvcreate's -l takes it (N, N%VG, N%FREE, N%PVS).
type LogicalVolume struct {
	Name    string `json:"name"`
	VG      string `json:"vg"`
	Size    int64  `json:"size,omitempty"`
	Extents string `json:"extents,omitempty"`
	// Type is DIB's: "" (linear), thin-pool, or thin, a thin volume of
	// virtual size Size in the pool ThinPool.
	Type     string      `json:"type,omitempty"`
	ThinPool string      `json:"thin_pool,omitempty"`
	Options  []string    `json:"options,omitempty"` // lvcreate's, before the group
	FS       *Filesystem `json:"fs,omitempty"`
}

// ExtentBytes is the volume groups' physical extent, LVM's default,
// which DIB rounds logical volume sizes down to.
const ExtentBytes = 4 << 20

// Device is a block device of the layout that can carry a filesystem:
// a partition or a logical volume.
type Device struct {
	Name string
	Kind string // "partition NAME" or "lv NAME", for messages
	FS   *Filesystem
}

// Devices are the layout's partitions, in order, then its logical
// volumes, in order: the order the guest's image lists their devices.
func (l *Layout) Devices() []Device {
	var ds []Device
	for _, p := range l.Partitions {
		ds = append(ds, Device{p.Name, "partition " + p.Name, p.FS})
	}
	if l.LVM != nil {
		for _, lv := range l.LVM.LVs {
			ds = append(ds, Device{lv.Name, "lv " + lv.Name, lv.FS})
		}
	}
	return ds
}

// MapperName is the device mapper's name for logical volume lv of group
// vg, as LVM makes it: each name's dashes doubled, joined by a dash.
func MapperName(vg, lv string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
}
