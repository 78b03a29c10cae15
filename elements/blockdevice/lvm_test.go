package blockdevice

import (
	"os"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

func TestParseBlockDeviceEFILVM(t *testing.T) {
	data, err := os.ReadFile("../library/block-device-efi-lvm/block-device-default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if k := UnknownKeys(data); len(k) != 0 {
		t.Errorf("unknown keys %q", k)
	}
	l, err := Parse(data, "")
	if err != nil {
		t.Fatal(err)
	}
	lvm := l.LVM
	if lvm == nil || len(lvm.PVs) != 1 || lvm.PVs[0].Base != "root" || strings.Join(lvm.PVs[0].Options, " ") != "--force" ||
		len(lvm.VGs) != 1 || lvm.VGs[0].Name != "vg" || strings.Join(lvm.VGs[0].Bases, " ") != "pv" || len(lvm.LVs) != 3 {
		t.Fatalf("lvm parsed as %+v", lvm)
	}
	root := lvm.LVs[0]
	if root.Name != "lv_root" || root.VG != "vg" || root.Extents != "23%VG" || root.FS == nil ||
		root.FS.Type != "xfs" || root.FS.Label != "img-rootfs" || root.FS.MountPoint != "/" || root.FS.FstabOptions != "rw,relatime" || root.FS.FsckPassno != 1 {
		t.Errorf("lv_root parsed as %+v / %+v", root, root.FS)
	}
	if l.Root() != root.FS || lvm.LVs[2].FS.MountPoint != "/home" || l.Partitions[2].FS != nil {
		t.Errorf("root %+v, home %+v, root partition's fs %+v", l.Root(), lvm.LVs[2].FS, l.Partitions[2].FS)
	}
	var names []string
	for _, d := range l.Devices() {
		names = append(names, d.Name)
	}
	if got := strings.Join(names, " "); got != "ESP BSP root lv_root lv_var lv_home" {
		t.Errorf("devices %s", got)
	}
	// 40G is 38146 MiB: 9535 extents of 4 MiB after LVM's first MiB.
	if _, err := Place(l, 41<<30); err != nil {
		t.Errorf("placed on 41 GiB: %v", err)
	}
}

// lvmLayout is a layout with one lvm node, the given pvs, vgs and lvs
// lines spliced in.
func lvmLayout(pvs, vgs, lvs, tail string) string {
	return `- local_loop: {name: image0}
- partitioning:
    base: image0
    label: gpt
    partitions:
      - {name: boot, size: 100MiB, mkfs: {type: ext4, mount: {mount_point: /boot}}}
      - {name: p1, size: 1GiB}
      - {name: p2, size: 1GiB}
- lvm:
    name: lvm
    pvs:
` + pvs + `
    vgs:
` + vgs + `
    lvs:
` + lvs + `
- mkfs: {name: fs_root, base: lv_root, mount: {mount_point: /}}
` + tail
}

const (
	onePV = "      - {name: pv1, base: p1}"
	oneVG = "      - {name: vg, base: [pv1]}"
	oneLV = "      - {name: lv_root, base: vg, size: 500MiB}"
)

func TestParseLVMChecks(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"vg names no pv", lvmLayout(onePV, "      - {name: vg, base: [pv9]}", oneLV, ""), `vg vg: base "pv9" names no pv`},
		{"lv names no vg", lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg9, size: 1GiB}", ""), `lv lv_root: base "vg9" names no vg`},
		{"pv on no partition", lvmLayout("      - {name: pv1, base: p9}", oneVG, oneLV, ""), `pv pv1: base "p9" names no partition`},
		{"pv on a filesystem", lvmLayout("      - {name: pv1, base: boot}", oneVG, oneLV, ""), "partition boot has a filesystem (mkfs) too"},
		{"lv without size", lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg}", ""), "lv lv_root: needs a size or extents"},
		{"name twice", lvmLayout(onePV, oneVG, oneLV+"\n      - {name: p1, base: vg, size: 8MiB}", ""), "lv p1: the name is partition p1's too"},
		{"vg twice", lvmLayout(onePV+"\n      - {name: pv2, base: p2}", oneVG+"\n      - {name: vg, base: [pv2]}", oneLV, ""), "vg vg: the name is vg vg's too"},
		{"pv in two vgs", lvmLayout(onePV, oneVG+"\n      - {name: vg2, base: [pv1]}", oneLV, ""), "vg vg2: pv pv1 is in vg vg already"},
		{"over the vg", lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg, size: 2GiB}", ""), "lv lv_root: needs 2048 MiB, vg vg has 1020 MiB free of 1020 MiB"},
		{"percent over", lvmLayout(onePV, oneVG, oneLV+"\n      - {name: lv2, base: vg, extents: 60%VG}", ""), "lv lv2: needs 612 MiB, vg vg has 520 MiB free"},
		{"bad extents", lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg, extents: 23%XX}", ""), `extents "23%XX"`},
		{"thin without pool", lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg, type: thin, thin-pool: tp, size: 1GiB}", ""), `lv lv_root: thin-pool "tp" names no thin-pool listed before it`},
		{"thin on a linear lv", lvmLayout(onePV, oneVG, "      - {name: tp, base: vg, size: 8MiB}\n      - {name: lv_root, base: vg, type: thin, thin-pool: tp, size: 1GiB}", ""), "lv lv_root: thin-pool tp: is no thin-pool of vg vg"},
		{"thin without size", lvmLayout(onePV, oneVG, "      - {name: tp, base: vg, type: thin-pool, size: 800MiB}\n      - {name: lv_root, base: vg, type: thin, thin-pool: tp, extents: 10}", ""), "a thin volume needs a size"},
		{"pool too big", lvmLayout(onePV, oneVG, "      - {name: tp, base: vg, type: thin-pool, extents: 100%VG}\n      - {name: lv_root, base: vg, type: thin, thin-pool: tp, size: 1GiB}", ""), "lv tp: needs 1028 MiB, vg vg has 1020 MiB free"},
		{"filesystem on a pool", lvmLayout(onePV, oneVG, oneLV+"\n      - {name: tp, base: vg, type: thin-pool, size: 100MiB}", "- mkfs: {base: tp}"), "a thin-pool holds thin lvs, not a filesystem"},
		{"unknown type", lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg, type: raid1, size: 1GiB}", ""), `type "raid1": DIB knows thin and thin-pool only`},
		{"bad vg name", lvmLayout(onePV, "      - {name: '-vg', base: [pv1]}", "      - {name: lv_root, base: '-vg', size: 8MiB}", ""), `"-vg" is not an LVM name`},
		{"reserved lv name", lvmLayout(onePV, oneVG, oneLV+"\n      - {name: x_tmeta, base: vg, size: 8MiB}", ""), "LVM keeps _tmeta"},
		{"another disk", lvmLayout("      - {name: pv1, base: p1, options: [--force, /dev/vdb]}", oneVG, oneLV, ""), `pv pv1: options: "/dev/vdb" names a path`},
		{"devices option", lvmLayout(onePV, "      - {name: vg, base: [pv1], options: ['--devices=/dev/vdb']}", oneLV, ""), "vg vg: options: --devices is refused"},
		{"config option", lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg, size: 8MiB, options: [--config, 'x']}", ""), "lv lv_root: options: --config is refused"},
		{"mkfs on nothing", lvmLayout(onePV, oneVG, oneLV, "- mkfs: {name: fs_x, base: lv_x}"), `mkfs fs_x: base "lv_x" names no partition or lv`},
		{"two filesystems", lvmLayout(onePV, oneVG, oneLV, "- mkfs: {name: fs_x, base: lv_root}"), "mkfs fs_x: lv_root has a filesystem already"},
		{"no lvs", "- local_loop: {name: image0}\n- lvm: {name: x, pvs: [], vgs: [], lvs: []}", "lvm: needs pvs, vgs and lvs"},
		{"mount on nothing", lvmLayout(onePV, oneVG, oneLV, "- mount: {name: m, base: fs_none, mount_point: /x}"), `mount m: base "fs_none" names no mkfs`},
		{"mounted twice", lvmLayout(onePV, oneVG, oneLV, "- mount: {base: fs_root, mount_point: /x}"), "mount mount_fs_root: mkfs fs_root is mounted at / already"},
	} {
		_, err := Parse([]byte(c.in), "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %q", c.name, err, c.want)
		}
	}
}

func TestParseLVMSpannedAndFree(t *testing.T) {
	in := lvmLayout(onePV+"\n      - {name: pv2, base: p2}", "      - {name: vg, base: [pv1, pv2], options: [--force]}",
		oneLV+"\n      - {name: lv-data, base: vg, extents: 100%FREE}", "- mkfs: {base: lv-data, type: xfs, label: data, mount: {mount_point: /data}}")
	l, err := Parse([]byte(in), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.LVM.LVs[0].Size; got != 500<<20 {
		t.Errorf("500MiB parsed as %d", got)
	}
	if fs := l.LVM.LVs[1].FS; fs == nil || fs.MountPoint != "/data" || fs.Type != "xfs" {
		t.Errorf("lv-data's filesystem %+v", fs)
	}
	if got := api.MapperName("vg", "lv-data"); got != "vg-lv--data" {
		t.Errorf("mapper name %s", got)
	}
	// DIB's lvm sizes are rounded down to whole 4 MiB extents.
	in = strings.Replace(in, "size: 500MiB", "size: 1G", 1)
	if l, err = Parse([]byte(in), ""); err != nil || l.LVM.LVs[0].Size != 1_000_000_000-1_000_000_000%(4<<20) {
		t.Errorf("1G: %v, %+v", err, l)
	}
}

// Percentages of partitions are known only once the image's size is:
// Place checks the volumes then.
func TestPlaceChecksVolumes(t *testing.T) {
	in := strings.Replace(lvmLayout(onePV, oneVG, "      - {name: lv_root, base: vg, size: 700MiB}", ""), "{name: p1, size: 1GiB}", "{name: p1, size: 50%}", 1)
	in = strings.Replace(in, "{name: p2, size: 1GiB}", "{name: p2, size: 100MiB}", 1)
	l, err := Parse([]byte(in), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Place(l, 3<<30); err != nil {
		t.Errorf("3 GiB: %v", err)
	}
	if _, err := Place(l, 1200<<20); err == nil || !strings.Contains(err.Error(), "on a 1200 MiB image: lv lv_root: needs 700 MiB, vg vg has 548 MiB free") {
		t.Errorf("1200 MiB: %v", err)
	}
}

// DIB's graph form: mkfs, mount and fstab nodes at the top level, each
// naming its parent by base, names made up where none is given.
func TestParseGraphForm(t *testing.T) {
	in := lvmLayout(onePV, oneVG, oneLV+"\n      - {name: lv_var, base: vg, extents: 100%FREE}", `- mkfs: {base: lv_var, type: xfs}
- mount: {name: mount_var, base: mkfs_lv_var, mount_point: /var}
- fstab: {base: mount_var, options: "rw,nodev", fsck-passno: 2}
- mount: {base: mkfs_boot, mount_point: /srv, fstab: {options: ro}}
`)
	in = strings.Replace(in, "mkfs: {type: ext4, mount: {mount_point: /boot}}", "mkfs: {type: ext4}", 1)
	l, err := Parse([]byte(in), "")
	if err != nil {
		t.Fatal(err)
	}
	if fs := l.LVM.LVs[1].FS; fs == nil || fs.MountPoint != "/var" || fs.FstabOptions != "rw,nodev" || fs.FsckPassno != 2 {
		t.Errorf("lv_var's filesystem %+v", fs)
	}
	if fs := l.Partitions[0].FS; fs.MountPoint != "/srv" || fs.FstabOptions != "ro" {
		t.Errorf("boot's filesystem %+v", fs)
	}
}

// DIB's thin provisioning: a pool, thin volumes in it whose virtual
// sizes may add up to more than the pool.
func TestParseThin(t *testing.T) {
	in := lvmLayout(onePV, oneVG, "      - {name: tp, base: vg, type: thin-pool, size: 900MiB}\n"+
		"      - {name: lv_root, base: vg, type: thin, thin-pool: tp, size: 800MiB}\n"+
		"      - {name: lv_big, base: vg, type: thin, thin-pool: tp, size: 2GiB}", "")
	l, err := Parse([]byte(in), "")
	if err != nil {
		t.Fatal(err)
	}
	if lv := l.LVM.LVs[1]; lv.Type != "thin" || lv.ThinPool != "tp" || lv.Size != 800<<20 || lv.FS == nil {
		t.Errorf("lv_root parsed as %+v", lv)
	}
}
