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
		"- raid: {name: x}": "raid: dibvm does not support",
		"not: [a list":      "does not parse",
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

// layoutOf is a one-disk GPT configuration with the given partitions.
func layoutOf(partitions string) string {
	return "- local_loop: {name: image0}\n- partitioning:\n    base: image0\n    label: gpt\n    partitions:\n" + partitions
}

// Every problem of a layout is found, not only the first, each naming
// its partition.
func TestParseFindsEveryProblem(t *testing.T) {
	cfg := layoutOf(`      - {name: root, size: 1GiB, mkfs: {type: ext4, label: a-label-too-long-for-ext4, mount: {mount_point: /}}}
      - {name: root, size: 0, mkfs: {type: xfs, mount: {mount_point: /}}}
      - {name: data, size: 10%, mkfs: {type: vfat, label: TWELVECHARSS, mount: {mount_point: srv}}}
      - {name: big, size: 99999999999TiB}
`)
	_, err := Parse([]byte(cfg), "")
	if err == nil {
		t.Fatal("a layout with many problems parsed")
	}
	// size: 0 and the overflowing size stop parsing at their partition.
	for _, want := range []string{`partition root: size: "0": a partition needs a size above 0`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
	cfg = layoutOf(`      - {name: root, size: 1GiB, mkfs: {type: ext4, label: a-label-too-long-for-ext4, mount: {mount_point: /}}}
      - {name: root, size: 1GiB, mkfs: {type: xfs, label: twelve-chars, mount: {mount_point: /}}}
      - {name: data, size: 10%, mkfs: {type: vfat, label: TWELVECHARSS, mount: {mount_point: srv}}}
      - {name: logs, size: 10%, mkfs: {type: xfs, label: thirteen-char, mount: {mount_point: /srv/../srv}}}
`)
	_, err = Parse([]byte(cfg), "")
	if err == nil {
		t.Fatal("a layout with many problems parsed")
	}
	if _, err := Parse([]byte(layoutOf(`      - {name: a, size: 1GiB, mkfs: {label: same, mount: {mount_point: /srv}}}
      - {name: b, size: 1GiB, mkfs: {label: same, mount: {mount_point: /}}}
`)), ""); err == nil || !strings.Contains(err.Error(), `partition b: label "same" is partition a's too`) {
		t.Errorf("one label twice: %v", err)
	}
	for _, want := range []string{
		`partition root: label "a-label-too-long-for-ext4" is 25 characters; ext4 takes at most 16`,
		"partition root: the name is used twice",
		"partition root: mount_point / is partition root's too",
		`partition data: label "TWELVECHARSS" is 12 characters; vfat takes at most 11`,
		`partition data: mount_point "srv" is not an absolute path`,
		`partition logs: label "thirteen-char" is 13 characters; xfs takes at most 12`,
		"want exactly one filesystem mounted at /, found 2",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
	if _, err := Parse([]byte(layoutOf("      - {name: r, size: 99999999999TiB, mkfs: {mount: {mount_point: /}}}\n")), ""); err == nil || !strings.Contains(err.Error(), "more than any disk") {
		t.Errorf("an overflowing size: %v", err)
	}
	if _, err := Parse([]byte(layoutOf("      - {name: r, size: 12, mkfs: {mount: {mount_point: /}}}\n")), ""); err == nil || !strings.Contains(err.Error(), "less than a 512-byte sector") {
		t.Errorf("a size below a sector: %v", err)
	}
	// The longest labels each filesystem takes are fine.
	ok := layoutOf(`      - {name: root, size: 50%, mkfs: {type: ext4, label: sixteen-chars-ok, mount: {mount_point: /}}}
      - {name: esp, size: 100MiB, mkfs: {type: vfat, label: ELEVENCHARS, mount: {mount_point: /boot/efi}}}
      - {name: srv, size: 10%, mkfs: {type: xfs, label: twelve-chars, mount: {mount_point: /srv}}}
`)
	if _, err := Parse([]byte(ok), ""); err != nil {
		t.Errorf("labels at their limits: %v", err)
	}
}

// Keys no block device plugin reads are named with where they are: DIB
// ignores them, and they are most often misspelt.
func TestUnknownKeys(t *testing.T) {
	cfg := "- local_loop: {name: image0, size: 2G, colour: red}\n" + `- partitioning:
    base: image0
    label: gpt
    lable: mbr
    partitions:
      - name: root
        sise: 1GiB
        size: 100%
        mkfs:
          tpye: xfs
          mount:
            mount_point: /
            fstab: {options: defaults, fsck-passno: 1, dump-freq: 0, pass: 2}
`
	got := UnknownKeys([]byte(cfg))
	want := []string{"local_loop: colour", "partitioning: lable", "partition root: sise", "partition root mkfs: tpye", "partition root mkfs mount fstab: pass"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("UnknownKeys = %q, want %q", got, want)
	}
	if got := UnknownKeys([]byte(mbrDefault)); len(got) != 0 {
		t.Errorf("DIB's own layout has unknown keys %q", got)
	}
	if _, err := Parse([]byte(cfg), ""); err != nil {
		t.Errorf("unknown keys stop the parse: %v", err)
	}
}

// A setting of the wrong shape is said in the configuration's words.
func TestParseShapes(t *testing.T) {
	for in, want := range map[string]string{
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: gpt, partitions: {name: x}}":                 "partitioning: line 2: partitions: want a list, got a mapping",
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: [gpt]}":                                      "partitioning: line 2: label: want a single value, got a list",
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: gpt, partitions: [{name: r, flags: boot}]}":  "partition r: line 2: flags: want a list, got the value \"boot\"",
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: gpt, partitions: [{name: r, mkfs: ext4}]}":   "partition r: mkfs: line 2: want a mapping of settings, got the value \"ext4\"",
		"- local_loop: {name: image0}\n- partitioning: {base: image0, label: gpt, partitions: [{name: r, size: [1, 2]}]}": "partition r: line 2: size: want a single value, got a list",
	} {
		_, err := Parse([]byte(in), "")
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "struct") {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
}
