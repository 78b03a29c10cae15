package blockdevice

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/dibvm/dibvm/guestagent/api"
)

// graph holds the nodes of DIB's graph form that name their parent by
// base rather than nesting in it: top-level mkfs (on a partition or a
// logical volume), mount (on a mkfs) and fstab (on a mount) nodes. They
// are placed once every node is read, as their bases may come later.
type graph struct {
	mkfs   []*mkfsYAML
	mounts []mountYAML
	fstabs []fstabYAML
	// nested are the names of mkfs nodes nested in partitions, by the
	// partition's name: DIB names one mkfs_PARTITION unless it says.
	nested map[string]string
}

type mountYAML struct {
	Name       string
	Base       string
	MountPoint string `yaml:"mount_point"`
	Fstab      *fstabYAML
}

type fstabYAML struct {
	Name       string
	Base       string
	Options    string
	FsckPassno int `yaml:"fsck-passno"`
}

// add reads a top-level mkfs, mount or fstab node.
func (g *graph) add(kind string, v *yaml.Node) error {
	if err := checkShape(kind, kind+": ", v); err != nil {
		return err
	}
	var err error
	switch kind {
	case "mkfs":
		var m mkfsYAML
		err = v.Decode(&m)
		g.mkfs = append(g.mkfs, &m)
	case "mount":
		var m mountYAML
		err = v.Decode(&m)
		g.mounts = append(g.mounts, m)
	case "fstab":
		var f fstabYAML
		err = v.Decode(&f)
		g.fstabs = append(g.fstabs, f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// notePartitions records the names of the mkfs nodes nested in a
// partitioning node's partitions.
func (g *graph) notePartitions(v *yaml.Node) {
	var p struct {
		Partitions []struct {
			Name string
			Mkfs *struct{ Name string }
		}
	}
	if v.Decode(&p) != nil {
		return
	}
	if g.nested == nil {
		g.nested = map[string]string{}
	}
	for _, q := range p.Partitions {
		if q.Mkfs != nil {
			g.nested[q.Name] = nameOr(q.Mkfs.Name, "mkfs_"+q.Name)
		}
	}
}

// resolve places the top-level nodes: each mkfs on its partition or
// logical volume, each mount on its mkfs, each fstab on its mount.
func (g *graph) resolve(l *api.Layout, rootFSType string) error {
	if err := placeMkfs(l, g.mkfs, rootFSType); err != nil {
		return err
	}
	byMkfs := map[string]*api.Filesystem{}
	for _, p := range l.Partitions {
		if name, ok := g.nested[p.Name]; ok && p.FS != nil {
			byMkfs[name] = p.FS
		}
	}
	devices := map[string]*api.Filesystem{}
	for _, d := range l.Devices() {
		devices[d.Name] = d.FS
	}
	for _, m := range g.mkfs {
		byMkfs[nameOr(m.Name, "mkfs_"+m.Base)] = devices[m.Base]
	}
	byMount := map[string]*api.Filesystem{}
	for _, m := range g.mounts {
		where := "mount " + nameOr(m.Name, "mount_"+m.Base)
		fs := byMkfs[m.Base]
		switch {
		case fs == nil:
			return fmt.Errorf("%s: base %q names no mkfs", where, m.Base)
		case fs.MountPoint != "":
			return fmt.Errorf("%s: mkfs %s is mounted at %s already", where, m.Base, fs.MountPoint)
		case m.MountPoint == "":
			return fmt.Errorf("%s: needs a mount_point", where)
		}
		fs.MountPoint = m.MountPoint
		if f := m.Fstab; f != nil {
			fs.FstabOptions, fs.FsckPassno = f.Options, f.FsckPassno
		}
		byMount[nameOr(m.Name, "mount_"+m.Base)] = fs
	}
	for _, f := range g.fstabs {
		fs := byMount[f.Base]
		if fs == nil {
			return fmt.Errorf("fstab %s: base %q names no top-level mount", nameOr(f.Name, "fstab_"+f.Base), f.Base)
		}
		fs.FstabOptions, fs.FsckPassno = f.Options, f.FsckPassno
	}
	return nil
}

func nameOr(name, derived string) string {
	if name == "" {
		return derived
	}
	return name
}
