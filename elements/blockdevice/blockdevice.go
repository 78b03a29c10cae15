// Package blockdevice reads DIB's block device configuration (the YAML of
// DIB_BLOCK_DEVICE_CONFIG or an element's block-device-default.yaml) into
// a disk layout: one local loop image, its partition table, and the
// filesystems, mount points and fstab entries of its partitions.
//
// It covers the configurations DIB's block-device-mbr, -gpt and -efi
// elements ship and those users write in the same shape; it refuses what
// it does not know (LVM, md raid) with an error that says so.
package blockdevice

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Layout is a whole disk.
type Layout struct {
	Image      string      `json:"image"` // the local_loop name
	Label      string      `json:"label"` // mbr or gpt
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

// Size is a partition size: a fixed number of bytes, or a percentage of
// the space the fixed-size partitions leave.
type Size struct {
	Bytes   int64 `json:"bytes,omitempty"`
	Percent int   `json:"percent,omitempty"`
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

// Parse reads a block device configuration.
func Parse(data []byte) (*Layout, error) {
	var nodes []map[string]yaml.Node
	if err := yaml.Unmarshal(data, &nodes); err != nil {
		return nil, fmt.Errorf("does not parse as a list of block device nodes: %w", err)
	}
	l := &Layout{}
	var pending []map[string]yaml.Node // top-level mkfs/mount/fstab
	for _, n := range nodes {
		if len(n) != 1 {
			return nil, fmt.Errorf("each node is a mapping with one key (local_loop, partitioning, ...), got %d keys", len(n))
		}
		for kind, v := range n {
			switch kind {
			case "local_loop":
				var ll struct{ Name string }
				if err := v.Decode(&ll); err != nil || ll.Name == "" {
					return nil, fmt.Errorf("local_loop: needs a name")
				}
				if l.Image != "" {
					return nil, fmt.Errorf("local_loop %s: only one image is supported", ll.Name)
				}
				l.Image = ll.Name
			case "partitioning":
				if err := l.parsePartitioning(&v); err != nil {
					return nil, fmt.Errorf("partitioning: %w", err)
				}
			case "mkfs", "mount", "fstab":
				pending = append(pending, n)
			default:
				return nil, fmt.Errorf("%s: dibvm does not support this block device node yet (supported: local_loop, partitioning, mkfs, mount, fstab)", kind)
			}
		}
	}
	if l.Image == "" {
		return nil, fmt.Errorf("no local_loop node")
	}
	if len(l.Partitions) == 0 {
		return nil, fmt.Errorf("no partitioning node: an unpartitioned image is not supported yet")
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("mkfs, mount and fstab must be nested in their partition")
	}
	return l, l.check()
}

func (l *Layout) parsePartitioning(v *yaml.Node) error {
	var p struct {
		Base       string
		Label      string
		Partitions []struct {
			Name  string
			Flags []string
			Type  string
			Size  string
			Mkfs  *struct {
				Type  string
				Label string
				UUID  string
				Opts  string
				Mount *struct {
					MountPoint string `yaml:"mount_point"`
					Fstab      *struct {
						Options    string
						FsckPassno int `yaml:"fsck-passno"`
					}
				}
			}
		}
	}
	if err := v.Decode(&p); err != nil {
		return err
	}
	if l.Image == "" {
		return fmt.Errorf("no local_loop named %q comes before it", p.Base)
	}
	if p.Base != l.Image {
		return fmt.Errorf("base %q is not the local_loop %q", p.Base, l.Image)
	}
	switch p.Label {
	case "mbr", "gpt":
		l.Label = p.Label
	default:
		return fmt.Errorf("label %q: want mbr or gpt", p.Label)
	}
	for _, q := range p.Partitions {
		size, err := parseSize(q.Size)
		if err != nil {
			return fmt.Errorf("partition %s: size: %w", q.Name, err)
		}
		part := Partition{Name: q.Name, Flags: q.Flags, Type: q.Type, Size: size}
		if m := q.Mkfs; m != nil {
			fs := &Filesystem{Type: m.Type, Label: m.Label, UUID: m.UUID, Options: m.Opts}
			if fs.Type == "" {
				fs.Type = "ext4"
			}
			if m.Mount != nil {
				fs.MountPoint = m.Mount.MountPoint
				if f := m.Mount.Fstab; f != nil {
					fs.FstabOptions, fs.FsckPassno = f.Options, f.FsckPassno
				}
			}
			part.FS = fs
		}
		l.Partitions = append(l.Partitions, part)
	}
	return nil
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*(%|[KMGT]i?B?|B)?$`)

// parseSize reads DIB's sizes: 100%, 550MiB, 8MiB, 1G, 512 (bytes).
func parseSize(s string) (Size, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Size{}, fmt.Errorf("%q: want a percentage or a size such as 550MiB", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	if m[2] == "%" {
		if n <= 0 || n > 100 {
			return Size{}, fmt.Errorf("%q: a percentage is between 0 and 100", s)
		}
		return Size{Percent: int(n)}, nil
	}
	unit := map[string]float64{"": 1, "B": 1,
		"K": 1e3, "KB": 1e3, "KiB": 1 << 10, "Ki": 1 << 10,
		"M": 1e6, "MB": 1e6, "MiB": 1 << 20, "Mi": 1 << 20,
		"G": 1e9, "GB": 1e9, "GiB": 1 << 30, "Gi": 1 << 30,
		"T": 1e12, "TB": 1e12, "TiB": 1 << 40, "Ti": 1 << 40}[m[2]]
	return Size{Bytes: int64(n * unit)}, nil
}

func (l *Layout) check() error {
	roots := 0
	percent := 0
	for _, p := range l.Partitions {
		percent += p.Size.Percent
		if p.FS != nil && p.FS.MountPoint == "/" {
			roots++
		}
	}
	if roots != 1 {
		return fmt.Errorf("want exactly one filesystem mounted at /, found %d", roots)
	}
	if percent > 100 {
		return fmt.Errorf("partition percentages add up to %d%%", percent)
	}
	if l.Label == "mbr" && len(l.Partitions) > 4 {
		return fmt.Errorf("more than 4 MBR partitions (logical partitions) are not supported yet")
	}
	return nil
}

// Fixed is the total of the partitions' fixed sizes.
func (l *Layout) Fixed() int64 {
	var n int64
	for _, p := range l.Partitions {
		n += p.Size.Bytes
	}
	return n
}
