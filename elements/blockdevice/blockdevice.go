// Package blockdevice reads DIB's block device configuration (the YAML of
// DIB_BLOCK_DEVICE_CONFIG or an element's block-device-default.yaml) into
// a disk layout: one local loop image, its partition table, LVM volume
// groups on its partitions, and the filesystems, mount points and fstab
// entries of its partitions and logical volumes.
//
// It covers the configurations DIB's block-device-mbr, -gpt, -efi and
// -efi-lvm elements ship and those users write in the same shape; it
// refuses what it does not know (md raid) with an error that says so.
package blockdevice

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/dibvm/dibvm/guestagent/api"
)

// FSTypes are the filesystems the guest can make.
var FSTypes = []string{"ext2", "ext3", "ext4", "xfs", "vfat"}

// Parse reads a block device configuration. rootFSType is the root
// filesystem's type where its mkfs names none, as DIB's FS_TYPE; empty
// means ext4, as for every other filesystem without a type.
func Parse(data []byte, rootFSType string) (*api.Layout, error) {
	var nodes []map[string]yaml.Node
	if err := yaml.Unmarshal(data, &nodes); err != nil {
		return nil, fmt.Errorf("does not parse as a list of block device nodes: %w", err)
	}
	l := &api.Layout{}
	g := &graph{} // top-level mkfs, mount and fstab nodes, placed once all is read
	for _, n := range nodes {
		if len(n) != 1 {
			return nil, fmt.Errorf("each node is a mapping with one key (local_loop, partitioning, ...), got %d keys", len(n))
		}
		for kind, v := range n {
			if err := parseNode(l, kind, &v, rootFSType, g); err != nil {
				return nil, err
			}
		}
	}
	if l.Image == "" {
		return nil, fmt.Errorf("no local_loop node")
	}
	if len(l.Partitions) == 0 {
		return nil, fmt.Errorf("no partitioning node: an unpartitioned image is not supported yet")
	}
	if err := g.resolve(l, rootFSType); err != nil {
		return nil, err
	}
	return l, check(l)
}

// parseNode reads one top-level node of kind into l; a top-level mkfs,
// mount or fstab node goes into g, to be placed on its base once every
// node is read.
func parseNode(l *api.Layout, kind string, v *yaml.Node, rootFSType string, g *graph) error {
	switch kind {
	case "local_loop":
		var ll struct{ Name string }
		if err := v.Decode(&ll); err != nil || ll.Name == "" {
			return fmt.Errorf("local_loop: needs a name")
		}
		if l.Image != "" {
			return fmt.Errorf("local_loop %s: only one image is supported", ll.Name)
		}
		l.Image = ll.Name
	case "partitioning":
		if err := parsePartitioning(l, v, rootFSType); err != nil {
			return fmt.Errorf("partitioning: %w", err)
		}
		g.notePartitions(v)
	case "lvm":
		if err := parseLVM(l, v); err != nil {
			return fmt.Errorf("lvm: %s", strings.ReplaceAll(err.Error(), "\n", "\nlvm: "))
		}
	case "mkfs", "mount", "fstab":
		return g.add(kind, v)
	default:
		return fmt.Errorf("%s: dibvm does not support this block device node yet (supported: local_loop, partitioning, lvm, mkfs, mount, fstab)", kind)
	}
	return nil
}

// placeMkfs puts each top-level mkfs node's filesystem on the partition
// or logical volume its base names.
func placeMkfs(l *api.Layout, mkfs []*mkfsYAML, rootFSType string) error {
	for _, m := range mkfs {
		where := "mkfs " + nameOr(m.Name, "mkfs_"+m.Base)
		fs, err := parseMkfs(m, rootFSType)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		var slot **api.Filesystem
		for i := range l.Partitions {
			if l.Partitions[i].Name == m.Base {
				slot = &l.Partitions[i].FS
			}
		}
		if l.LVM != nil {
			for i := range l.LVM.LVs {
				if lv := &l.LVM.LVs[i]; lv.Name == m.Base && lv.Type != "thin-pool" {
					slot = &lv.FS
				}
			}
		}
		switch {
		case m.Base == "":
			return fmt.Errorf("%s: needs a base: the partition or lv it is made on", where)
		case slot == nil:
			return fmt.Errorf("%s: base %q names no partition or lv (a thin-pool holds thin lvs, not a filesystem)", where, m.Base)
		case *slot != nil:
			return fmt.Errorf("%s: %s has a filesystem already", where, m.Base)
		}
		*slot = fs
	}
	return nil
}

// partitioningYAML is DIB's partitioning node, as written.
type partitioningYAML struct {
	Base       string
	Label      string
	Align      string
	Partitions []partitionYAML
}

type partitionYAML struct {
	Name  string
	Flags []string
	Type  string
	Size  string
	Mkfs  *mkfsYAML
}

// mkfsYAML is a mkfs node, nested in its partition or at the top level
// with a base naming its partition or logical volume.
type mkfsYAML struct {
	Name  string
	Base  string
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

func parsePartitioning(l *api.Layout, v *yaml.Node, rootFSType string) error {
	var p partitioningYAML
	if err := checkShape("partitioning", "", v); err != nil {
		return err
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
	l.Align = mib
	if p.Align != "" {
		a, err := parseSize(p.Align)
		if err != nil || a.Bytes < sector || a.Bytes%sector != 0 {
			return fmt.Errorf("align %q: want a multiple of 512 bytes such as 1MiB", p.Align)
		}
		l.Align = a.Bytes
	}
	for _, q := range p.Partitions {
		part, err := parsePartition(q, l.Label, rootFSType)
		if err != nil {
			return fmt.Errorf("partition %s: %w", q.Name, err)
		}
		l.Partitions = append(l.Partitions, part)
	}
	return nil
}

// parsePartition reads one partition of a table with the given label; a
// filesystem without a type is ext4, or rootFSType if it is mounted at /.
func parsePartition(q partitionYAML, label, rootFSType string) (api.Partition, error) {
	if q.Size == "" {
		return api.Partition{}, errors.New("no size")
	}
	size, err := parseSize(q.Size)
	if err != nil {
		return api.Partition{}, fmt.Errorf("size: %w", err)
	}
	for _, f := range q.Flags {
		switch {
		case f != "boot" && f != "primary":
			return api.Partition{}, fmt.Errorf("unknown flag %q (boot, primary)", f)
		case f == "primary" && label == "gpt":
			return api.Partition{}, errors.New("the primary flag is for mbr labels only")
		}
	}
	part := api.Partition{Name: q.Name, Flags: q.Flags, Type: q.Type, Size: size}
	if q.Mkfs == nil {
		return part, nil
	}
	fs, err := parseMkfs(q.Mkfs, rootFSType)
	part.FS = fs
	return part, err
}

// parseMkfs reads a mkfs node; a filesystem without a type is ext4, or
// rootFSType if it is mounted at /.
func parseMkfs(m *mkfsYAML, rootFSType string) (*api.Filesystem, error) {
	fs := &api.Filesystem{Type: m.Type, Label: m.Label, UUID: m.UUID, Options: m.Opts}
	if m.Mount != nil {
		fs.MountPoint = m.Mount.MountPoint
		if f := m.Mount.Fstab; f != nil {
			fs.FstabOptions, fs.FsckPassno = f.Options, f.FsckPassno
		}
	}
	if fs.Type == "" {
		fs.Type = "ext4"
		if fs.MountPoint == "/" && rootFSType != "" {
			fs.Type = rootFSType
		}
	}
	if !slices.Contains(FSTypes, fs.Type) {
		return nil, fmt.Errorf("mkfs type %q is not supported (%s)", fs.Type, strings.Join(FSTypes, ", "))
	}
	return fs, nil
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*(%|[KMGT]i?B?|B)?$`)

// parseSize reads DIB's sizes: 100%, 550MiB, 8MiB, 1G, 512 (bytes).
func parseSize(s string) (api.Size, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return api.Size{}, fmt.Errorf("%q: want a percentage or a size such as 550MiB", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	if n == 0 {
		return api.Size{}, fmt.Errorf("%q: a partition needs a size above 0", s)
	}
	if m[2] == "%" {
		if n <= 0 || n > 100 {
			return api.Size{}, fmt.Errorf("%q: a percentage is between 0 and 100", s)
		}
		return api.Size{Percent: n}, nil
	}
	unit := map[string]float64{"": 1, "B": 1,
		"K": 1e3, "KB": 1e3, "KiB": 1 << 10, "Ki": 1 << 10,
		"M": 1e6, "MB": 1e6, "MiB": 1 << 20, "Mi": 1 << 20,
		"G": 1e9, "GB": 1e9, "GiB": 1 << 30, "Gi": 1 << 30,
		"T": 1e12, "TB": 1e12, "TiB": 1 << 40, "Ti": 1 << 40}[m[2]]
	if n*unit >= 1<<62 {
		return api.Size{}, fmt.Errorf("%q: more than any disk", s)
	}
	if n*unit < sector {
		return api.Size{}, fmt.Errorf("%q: less than a 512-byte sector", s)
	}
	return api.Size{Bytes: int64(n * unit)}, nil
}

// LabelLimits are the longest labels the filesystems take. mkfs cuts a
// longer one, while fstab and GRUB look for the whole: the image would
// not boot.
var LabelLimits = map[string]int{"ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "vfat": 11}

// CheckLabel says whether label fits a filesystem of type fsType.
func CheckLabel(fsType, label string) error {
	if n, ok := LabelLimits[fsType]; ok && len(label) > n {
		return fmt.Errorf("label %q is %d characters; %s takes at most %d", label, len(label), fsType, n)
	}
	return nil
}

// check finds every problem of a layout, not only the first.
func check(l *api.Layout) error {
	var errs []error
	names := map[string]string{}
	for _, p := range l.Partitions {
		if names[p.Name] != "" {
			errs = append(errs, fmt.Errorf("partition %s: the name is used twice", p.Name))
		}
		names[p.Name] = "partition " + p.Name
	}
	if l.LVM != nil {
		lvmErrs := checkLVM(l, names)
		if sizes, ok := fixedPVs(l); ok && len(lvmErrs) == 0 {
			lvmErrs = append(lvmErrs, CheckVolumes(l, sizes))
		}
		for _, err := range lvmErrs {
			if err != nil {
				errs = append(errs, fmt.Errorf("lvm: %w", err))
			}
		}
	}
	errs = append(errs, checkFilesystems(l)...)
	if l.Label == "mbr" {
		errs = append(errs, checkMBR(l))
	}
	return errors.Join(errs...)
}

// checkFilesystems checks the filesystems of the partitions and logical
// volumes: labels that fit and differ, mount points that are absolute
// and differ, and one root.
func checkFilesystems(l *api.Layout) []error {
	var errs []error
	roots := 0
	mounts := map[string]string{}
	labels := map[string]string{}
	for _, d := range l.Devices() {
		if d.FS == nil {
			continue
		}
		if err := CheckLabel(d.FS.Type, d.FS.Label); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Kind, err))
		}
		if l := d.FS.Label; l != "" && labels[l] != "" {
			errs = append(errs, fmt.Errorf("%s: label %q is %s's too: fstab and GRUB could not tell them apart", d.Kind, l, labels[l]))
		} else if l != "" {
			labels[l] = d.Kind
		}
		mp := d.FS.MountPoint
		switch {
		case mp == "":
			continue
		case !strings.HasPrefix(mp, "/"):
			errs = append(errs, fmt.Errorf("%s: mount_point %q is not an absolute path", d.Kind, mp))
		case mounts[mp] != "":
			errs = append(errs, fmt.Errorf("%s: mount_point %s is %s's too", d.Kind, mp, mounts[mp]))
		}
		mounts[mp] = d.Kind
		if mp == "/" {
			roots++
		}
	}
	if roots != 1 {
		errs = append(errs, fmt.Errorf("want exactly one filesystem mounted at /, found %d", roots))
	}
	return errs
}

// checkMBR holds an MBR layout to DIB's rules: partitions flagged
// primary come first, and the rest are logical partitions in one
// extended partition, which takes one of the four primary slots.
func checkMBR(l *api.Layout) error {
	primaries, logical := 0, 0
	for _, p := range l.Partitions {
		if !p.Primary() {
			logical++
			continue
		}
		if logical > 0 {
			return fmt.Errorf("partition %s is primary but follows a logical partition: list the primary partitions first", p.Name)
		}
		primaries++
	}
	switch {
	case primaries > 4:
		return fmt.Errorf("%d primary partitions: an MBR holds at most 4", primaries)
	case primaries == 4 && logical > 0:
		return fmt.Errorf("4 primary partitions leave no slot for the extended partition the %d logical ones need: drop the primary flag from one", logical)
	}
	return nil
}

// Fixed is the total of the partitions' fixed sizes.
func Fixed(l *api.Layout) int64 {
	var n int64
	for _, p := range l.Partitions {
		n += p.Size.Bytes
	}
	return n
}
