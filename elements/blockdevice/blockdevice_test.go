package blockdevice

import (
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
)

const mbrDefault = `# Default single partition loopback

- local_loop:
    name: image0

- partitioning:
    base: image0
    label: mbr
    partitions:
      - name: root
        flags: [ boot, primary ]
        size: 100%
        mkfs:
          mount:
            mount_point: /
            fstab:
              options: "defaults"
              fsck-passno: 1
`

const efiDefault = `- local_loop:
    name: image0

- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: ESP
        type: 'EF00'
        size: 550MiB
        mkfs:
          type: vfat
          mount:
            mount_point: /boot/efi
            fstab:
              options: "defaults"
              fsck-passno: 2
      - name: BSP
        type: 'EF02'
        size: 8MiB
      - name: root
        type: '8300'
        size: 100%
        mkfs:
          type: ext4
          mount:
            mount_point: /
            fstab:
              options: "defaults"
              fsck-passno: 1
`

func TestParseDIBDefaults(t *testing.T) {
	l, err := Parse([]byte(mbrDefault), "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Label != "mbr" || len(l.Partitions) != 1 || l.Partitions[0].Size.Percent != 100 ||
		l.Partitions[0].FS.Type != "ext4" || l.Partitions[0].FS.MountPoint != "/" || l.Partitions[0].FS.FsckPassno != 1 {
		t.Errorf("mbr default parsed as %+v / %+v", l, l.Partitions[0].FS)
	}
	l, err = Parse([]byte(efiDefault), "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Label != "gpt" || len(l.Partitions) != 3 || l.Partitions[0].Size.Bytes != 550<<20 || l.Partitions[1].FS != nil ||
		l.Partitions[0].FS.Type != "vfat" || l.Partitions[0].FS.MountPoint != "/boot/efi" {
		t.Errorf("efi default parsed as %+v", l)
	}
	if Fixed(l) != 558<<20 {
		t.Errorf("fixed %d", Fixed(l))
	}
}

// FS_TYPE fills in the root filesystem's type where its mkfs has none,
// and only there: block-device-efi's config names ext4 and vfat, as
// DIB's does.
func TestParseRootFSType(t *testing.T) {
	l, err := Parse([]byte(mbrDefault), "xfs")
	if err != nil || l.Partitions[0].FS.Type != "xfs" {
		t.Errorf("block-device-mbr with FS_TYPE=xfs: %v %+v", err, l)
	}
	if l, err = Parse([]byte(efiDefault), "xfs"); err != nil || l.Partitions[0].FS.Type != "vfat" || l.Partitions[2].FS.Type != "ext4" {
		t.Errorf("the types a config gives must win over FS_TYPE: %v %+v", err, l)
	}
	if _, err := Parse([]byte(mbrDefault), "btrfs"); err == nil || !strings.Contains(err.Error(), `mkfs type "btrfs" is not supported`) {
		t.Errorf("FS_TYPE=btrfs: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	for in, want := range map[string]string{
		"- lvm: {name: x}": "lvm: dibvm does not support",
		"not: [a list":     "does not parse",
		"- partitioning: {base: image0, label: mbr, partitions: [{name: r, size: 100%}]}":                               "no local_loop",
		"- local_loop: {name: image0}\n- partitioning: {base: other, label: mbr}":                                       `base "other"`,
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: dos}":                                      `label "dos"`,
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: mbr, partitions: [{name: r, size: lots}]}": `size: "lots"`,
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: mbr, partitions: [{name: r, size: 100%}]}": "exactly one filesystem mounted at /",
	} {
		if _, err := Parse([]byte(in), ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]api.Size{
		"100%": {Percent: 100}, "550MiB": {Bytes: 550 << 20}, "8MiB": {Bytes: 8 << 20},
		"1G": {Bytes: 1e9}, "2GiB": {Bytes: 2 << 30}, "512": {Bytes: 512}, "1.5GiB": {Bytes: 3 << 29},
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}
