package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lvmConfig puts a volume group on the second partition of a GPT, with
// a root volume, a /var volume whose name has a dash (doubled in its
// device mapper name), a thin pool with a thin /home, and a /boot
// partition beside it.
const lvmConfig = `- local_loop:
    name: image0
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: boot
        size: 64MiB
        mkfs:
          type: ext2
          mount:
            mount_point: /boot
      - name: lvmpart
        type: '8E00'
        size: 100%
- lvm:
    name: lvm
    pvs:
      - name: pv
        base: lvmpart
        options: [ "--force" ]
    vgs:
      - name: vg_tiny
        base: [ pv ]
        options: [ "--force" ]
    lvs:
      - name: lv_root
        base: vg_tiny
        extents: 50%VG
      - name: lv-var
        base: vg_tiny
        extents: 20%VG
      - name: pool
        base: vg_tiny
        type: thin-pool
        extents: 80%FREE
      - name: lv_home
        base: vg_tiny
        type: thin
        thin-pool: pool
        size: 64MiB
- mkfs:
    name: fs_root
    base: lv_root
    mount:
      mount_point: /
      fstab:
        fsck-passno: 1
- mkfs:
    name: fs_var
    base: lv-var
    label: var
    mount:
      mount_point: /var
      fstab:
        options: "rw,nodev"
        fsck-passno: 2
- mkfs:
    name: fs_home
    base: lv_home
    mount:
      mount_point: /home
`

// lvmVolume is a logical volume's segment type and, for a linear one,
// where it lies in its physical volume, in 512-byte sectors from the
// physical volume's start.
type lvmVolume struct {
	kind           string // striped (linear here), thin, thin-pool
	start, sectors int64
}

// readLVM reads the newest copy of a volume group's text metadata from
// the metadata area at the start of a physical volume, and finds each
// logical volume's one linear segment in it.
func readLVM(t *testing.T, pv, vg string) map[string]lvmVolume {
	t.Helper()
	data, err := os.ReadFile(pv)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 1<<20 || !bytes.Equal(data[512+24:512+32], []byte("LVM2 001")) {
		t.Fatalf("no LVM2 label in the physical volume's second sector")
	}
	area := data[:1<<20]
	var text string
	best := -1
	for _, copy := range bytes.Split(area, []byte{0}) {
		m := regexp.MustCompile(`(?m)^seqno = (\d+)$`).FindSubmatch(copy)
		if m == nil || !bytes.HasPrefix(copy, []byte(vg+" {")) {
			continue
		}
		if n, _ := strconv.Atoi(string(m[1])); n > best {
			best, text = n, string(copy)
		}
	}
	if text == "" {
		t.Fatalf("no metadata of volume group %s in the physical volume", vg)
	}
	num := func(re string) int64 {
		m := regexp.MustCompile(re).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("metadata lacks %s:\n%s", re, text)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	extent, peStart := num(`extent_size = (\d+)`), num(`pe_start = (\d+)`)
	lvs := map[string]lvmVolume{}
	// A volume's header, the lines up to its first segment (no braces
	// there), and the segment's body (none in it either).
	lvRE := regexp.MustCompile(`\n(\S+) \{\nid = [^\n]*\nstatus = [^\n]*\n(?:[^{}\n]*\n)*?segment1 \{\n([^{}]*)\}`)
	for _, m := range lvRE.FindAllStringSubmatch(text, -1) {
		seg := m[2]
		if typ := regexp.MustCompile(`type = "(\w[\w-]*)"`).FindStringSubmatch(seg); typ != nil && typ[1] != "striped" {
			lvs[m[1]] = lvmVolume{kind: typ[1]}
			continue
		}
		lin := regexp.MustCompile(`extent_count = (\d+)(?s:.*)stripes = \[\n"pv0", (\d+)`).FindStringSubmatch(seg)
		if lin == nil {
			t.Fatalf("volume %s: a segment that is neither linear on pv0 nor typed:\n%s", m[1], seg)
		}
		count, _ := strconv.ParseInt(lin[1], 10, 64)
		first, _ := strconv.ParseInt(lin[2], 10, 64)
		lvs[m[1]] = lvmVolume{"striped", peStart + first*extent, count * extent}
	}
	return lvs
}

// An lvm layout: the partitions, the volume group in the physical
// volume's metadata under the layout's names, and the filesystems in
// the logical volumes, read from the host without root or mounting.
func TestCreateLVMLayout(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIB_USER_SETTING=lvm", "DIB_BLOCK_DEVICE_CONFIG=" + lvmConfig}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "raw", "--image-size", "1", "-o", out, "user-element")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr, 40))
	}
	raw := out + ".raw"
	parts := readPartitions(t, raw).PartitionTable.Partitions
	if len(parts) != 2 || parts[1].Type != "E6D6D379-F507-44C2-A23C-238F2A3DF928" {
		t.Fatalf("partitions %+v, want boot and an LVM partition", parts)
	}
	pv := extract(t, raw, parts[1].Start, parts[1].Size)
	if got := blkid(t, pv, "TYPE"); got != "LVM2_member" {
		t.Fatalf("partition 2 is %q, want LVM2_member", got)
	}
	lvs := readLVM(t, pv, "vg_tiny")
	root, varLV := lvs["lv_root"], lvs["lv-var"]
	// The pool's hidden data and metadata volumes are linear too.
	if root.kind != "striped" || varLV.kind != "striped" || lvs["pool"].kind != "thin-pool" || lvs["lv_home"].kind != "thin" || lvs["pool_tdata"].kind != "striped" {
		t.Fatalf("logical volumes %v, want linear lv_root and lv-var, thin-pool pool, thin lv_home", lvs)
	}
	// 50%VG then 20%VG (each rounded down to whole extents of 8192
	// sectors), one after the other.
	if d := root.sectors - varLV.sectors*50/20; d < -3*8192 || d > 3*8192 || varLV.start != root.start+root.sectors {
		t.Errorf("lv_root %v and lv-var %v: want 50%% and 20%% of the group, in order", root, varLV)
	}
	rootFS := extract(t, pv, root.start, root.sectors)
	varFS := extract(t, pv, varLV.start, varLV.sectors)
	if got := blkid(t, rootFS, "LABEL"); got != "cloudimg-rootfs" {
		t.Errorf("root volume's label %q", got)
	}
	if typ, label := blkid(t, varFS, "TYPE"), blkid(t, varFS, "LABEL"); typ != "ext4" || label != "var" {
		t.Errorf("var volume: %s labelled %q, want ext4 labelled var", typ, label)
	}
	// finalise.d ran chrooted into the image with the volumes mounted.
	if got := debugfsCat(t, varFS, "/user-finalise-d"); got != "finalise.d ran\n" {
		t.Errorf("/var/user-finalise-d on the var volume: %q", got)
	}
	fstab := debugfsCat(t, rootFS, "/etc/fstab")
	for _, line := range []string{
		"LABEL=cloudimg-rootfs / ext4 defaults 0 1",
		"LABEL=var /var ext4 rw,nodev 0 2",
		" /home ext4 defaults 0 0",
	} {
		if !strings.Contains(fstab, line+"\n") {
			t.Errorf("fstab lacks %q:\n%s", line, fstab)
		}
	}
}
