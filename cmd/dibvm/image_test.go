package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type partitionTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			Name     string `json:"name"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func readPartitions(t *testing.T, raw string) partitionTable {
	t.Helper()
	out, err := exec.Command(tool(t, "sfdisk", "fdisk"), "--json", raw).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", raw, err)
	}
	var pt partitionTable
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatal(err)
	}
	return pt
}

// extract copies a partition out of a raw image, so that host tools can
// read it without mounting anything.
func extract(t *testing.T, raw string, start, sectors int64) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "part-"+strconv.FormatInt(start, 10))
	src, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	off, end := start*512, (start+sectors)*512
	for off < end {
		n := int64(len(buf))
		if end-off < n {
			n = end - off
		}
		m, err := src.ReadAt(buf[:n], off)
		if err != nil && m == 0 {
			t.Fatal(err)
		}
		out.Write(buf[:m])
		off += int64(m)
	}
	return dst
}

func blkid(t *testing.T, dev, tag string) string {
	t.Helper()
	out, _ := exec.Command(tool(t, "blkid", "util-linux"), "-s", tag, "-o", "value", dev).Output()
	return strings.TrimSpace(string(out))
}

// Disk images: checked from the host with no root and no mounting.
func TestCreateDiskImages(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIB_USER_SETTING=disk", "DIB_JOURNAL_SIZE=16"}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "raw,qcow2,vhd,vhdx,vmdk,tar", "-o", out,
		"--mkfs-options", "-m 1", "--qemu-img-options", "compat=0.10", "user-element", "block-device-mbr")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, ext := range []string{"raw", "qcow2", "vhd", "vhdx", "vmdk", "tar"} {
		if !fileExists(out + "." + ext) {
			t.Errorf("%s.%s missing", out, ext)
		}
	}
	for _, ext := range []string{"qcow2", "vhdx", "vmdk"} {
		if o, err := exec.Command("qemu-img", "check", out+"."+ext).CombinedOutput(); err != nil {
			t.Errorf("qemu-img check %s.%s: %v\n%s", out, ext, err, o)
		}
	}
	// vhd (qemu-img's vpc) has no check; its size must match the raw.
	for _, ext := range []string{"qcow2", "vhd", "vhdx", "vmdk"} {
		info, err := exec.Command("qemu-img", "info", "--output=json", out+"."+ext).Output()
		var v struct {
			VirtualSize int64 `json:"virtual-size"`
		}
		if err != nil || json.Unmarshal(info, &v) != nil {
			t.Errorf("qemu-img info %s: %v", ext, err)
			continue
		}
		raw, _ := os.Stat(out + ".raw")
		if v.VirtualSize < raw.Size() {
			t.Errorf("%s virtual size %d < raw %d", ext, v.VirtualSize, raw.Size())
		}
	}
	pt := readPartitions(t, out+".raw")
	if pt.PartitionTable.Label != "dos" || len(pt.PartitionTable.Partitions) != 1 {
		t.Fatalf("partition table %+v, want one dos partition", pt)
	}
	p := pt.PartitionTable.Partitions[0]
	if p.Type != "83" || !p.Bootable {
		t.Errorf("partition %+v, want type 83, bootable", p)
	}
	root := extract(t, out+".raw", p.Start, p.Size)
	if got := blkid(t, root, "TYPE"); got != "ext4" {
		t.Errorf("root filesystem type %q", got)
	}
	if got := blkid(t, root, "LABEL"); got != "cloudimg-rootfs" {
		t.Errorf("root label %q, want cloudimg-rootfs", got)
	}
	if got := debugfsCat(t, root, "/etc/fstab"); got != "LABEL=cloudimg-rootfs / ext4 defaults 0 1\n" {
		t.Errorf("fstab %q", got)
	}
	// --mkfs-options reached mkfs: 1% reserved, not ext4's default 5%.
	if dump, err := exec.Command(tool(t, "dumpe2fs", "e2fsprogs"), "-h", root).Output(); err != nil {
		t.Errorf("dumpe2fs: %v", err)
	} else if blocks, reserved := e2fsField(dump, "Block count"), e2fsField(dump, "Reserved block count"); reserved*100 > blocks*2 || reserved == 0 {
		t.Errorf("reserved %d of %d blocks: --mkfs-options \"-m 1\" was not used", reserved, blocks)
	}
	// DIB_JOURNAL_SIZE (--mkfs-journal-size) sized the root's journal.
	if dump, err := exec.Command(tool(t, "dumpe2fs", "e2fsprogs"), "-h", root).Output(); err != nil {
		t.Errorf("dumpe2fs: %v", err)
	} else if got := e2fsField(dump, "Total journal blocks") * e2fsField(dump, "Block size"); got != 16<<20 {
		t.Errorf("DIB_JOURNAL_SIZE=16: the journal is %d bytes, not 16 MiB:\n%s", got, dump)
	}
	// --qemu-img-options reached qemu-img convert.
	if info, _ := exec.Command("qemu-img", "info", out+".qcow2").Output(); !strings.Contains(string(info), "compat: 0.10") {
		t.Errorf("qcow2 not made with compat=0.10:\n%s", info)
	}
	if got := debugfsCat(t, root, "/etc/user-root-d"); got != "root.d: hello from environment.d, disk\n" {
		t.Errorf("root.d effect %q", got)
	}
	if got := debugfsCat(t, root, "/etc/user-finalise-d"); got != "finalise.d ran\n" {
		t.Errorf("finalise.d (chrooted into the image) effect %q", got)
	}
}

// FS_TYPE makes the root filesystem of a config that names no type,
// labelled img-rootfs as DIB labels an XFS root; hooks see it as
// DIB_ROOT_FSTYPE.
func TestCreateXFSRoot(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIB_USER_SETTING=xfs", "FS_TYPE=xfs"}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "raw,tar", "--image-size", "0.5", "-o", out, "user-element", "block-device-mbr")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	p := readPartitions(t, out+".raw").PartitionTable.Partitions[0]
	root := extract(t, out+".raw", p.Start, p.Size)
	if typ, label := blkid(t, root, "TYPE"), blkid(t, root, "LABEL"); typ != "xfs" || label != "img-rootfs" {
		t.Errorf("root filesystem %s labelled %q, want xfs labelled img-rootfs", typ, label)
	}
	files := readTar(t, out+".tar")
	if got := files["etc/fstab"]; got != "LABEL=img-rootfs / xfs defaults 0 1\n" {
		t.Errorf("fstab %q", got)
	}
	if got := files["etc/user-root-fstype"]; got != "xfs\n" {
		t.Errorf("DIB_ROOT_FSTYPE in a hook: %q, want xfs", got)
	}
}

// e2fsField is a number from dumpe2fs -h.
func e2fsField(dump []byte, name string) int64 {
	for _, l := range strings.Split(string(dump), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// checkGPTWithESP checks the raw image of a build with block-device-efi
// and DIB_ROOT_LABEL=myroot: a GPT with the ESP, the BIOS boot partition
// and the root, as DIB lays them out, the label and fstab; it returns
// the root and ESP partitions as files.
func checkGPTWithESP(t *testing.T, raw string) (root, esp string) {
	t.Helper()
	pt := readPartitions(t, raw)
	parts := pt.PartitionTable.Partitions
	if pt.PartitionTable.Label != "gpt" || len(parts) != 3 {
		t.Fatalf("partition table %+v, want gpt with 3 partitions", pt)
	}
	want := []struct{ name, typ string }{
		{"ESP", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
		{"BSP", "21686148-6449-6E6F-744E-656564454649"},
		{"root", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
	}
	for i, w := range want {
		if parts[i].Name != w.name || parts[i].Type != w.typ {
			t.Errorf("partition %d = %s %s, want %s %s", i+1, parts[i].Name, parts[i].Type, w.name, w.typ)
		}
	}
	if parts[0].Size*512 != 550<<20 {
		t.Errorf("ESP is %d bytes, want 550 MiB", parts[0].Size*512)
	}
	esp = extract(t, raw, parts[0].Start, parts[0].Size)
	if got := blkid(t, esp, "TYPE"); got != "vfat" {
		t.Errorf("ESP type %q", got)
	}
	root = extract(t, raw, parts[2].Start, parts[2].Size)
	if got := blkid(t, root, "LABEL"); got != "myroot" {
		t.Errorf("root label %q, want myroot (DIB_ROOT_LABEL)", got)
	}
	fstab := debugfsCat(t, root, "/etc/fstab")
	if !strings.Contains(fstab, "LABEL=myroot / ext4 defaults 0 1") || !strings.Contains(fstab, "/boot/efi vfat defaults 0 2") {
		t.Errorf("fstab %q", fstab)
	}
	return root, esp
}

// An MBR with logical partitions, laid out as DIB lays it out: the
// primary partition first, then an extended partition to the end of the
// disk holding logical partitions numbered from 5.
const mbrLogicalConfig = `- local_loop:
    name: image0
- partitioning:
    base: image0
    label: mbr
    partitions:
      - name: boot
        flags: [ boot, primary ]
        size: 100MiB
        mkfs:
          type: ext2
          mount:
            mount_point: /boot
            fstab:
              fsck-passno: 2
      - name: var
        size: 25%
        mkfs:
          label: var
          mount:
            mount_point: /var
      - name: spare
        type: '0x82'
        size: 64MiB
      - name: root
        size: 100%
        mkfs:
          mount:
            mount_point: /
            fstab:
              fsck-passno: 1
`

func TestCreateMBRLogicalPartitions(t *testing.T) {
	needVM(t)
	out := filepath.Join(t.TempDir(), "img")
	env := []string{"ELEMENTS_PATH=" + testElements(t), "DIB_USER_SETTING=logical", "DIB_BLOCK_DEVICE_CONFIG=" + mbrLogicalConfig}
	r := dibvm(t, env, 10*time.Minute, "create", "-n", "-t", "raw", "--image-size", "1", "-o", out, "user-element")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	raw := out + ".raw"
	if fi, err := os.Stat(raw); err != nil || fi.Size() != 1<<30 {
		t.Fatalf("raw image: %v, size %v; want --image-size 1 (1 GiB)", err, fi)
	}
	pt := readPartitions(t, raw)
	type part struct {
		node, typ string
		bootable  bool
	}
	var got []part
	for _, p := range pt.PartitionTable.Partitions {
		got = append(got, part{strings.TrimPrefix(p.Node, raw), p.Type, p.Bootable})
	}
	want := []part{{"1", "83", true}, {"2", "f", false}, {"5", "83", false}, {"6", "82", false}, {"7", "83", false}}
	if pt.PartitionTable.Label != "dos" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("partitions %v, want dos with %v", got, want)
	}
	parts := pt.PartitionTable.Partitions
	disk := int64(1 << 30 / 512)
	if x := parts[1]; x.Start+x.Size != disk {
		t.Errorf("extended partition ends at sector %d, want the disk's end %d", x.Start+x.Size, disk)
	}
	if r := parts[4]; r.Start+r.Size != disk {
		t.Errorf("root (100%%, last) ends at sector %d, want the disk's end %d", r.Start+r.Size, disk)
	}
	for i, p := range parts {
		if p.Start%2048 != 0 {
			t.Errorf("partition %s starts at sector %d, off the 1 MiB alignment", p.Node, p.Start)
		}
		if i > 2 && p.Start-2048 < parts[i-1].Start+parts[i-1].Size {
			t.Errorf("logical partition %s leaves no MiB for its EBR", p.Node)
		}
	}
	if parts[0].Size*512 != 100<<20 || parts[3].Size*512 != 64<<20 {
		t.Errorf("boot %d and spare %d sectors, want 100 MiB and 64 MiB", parts[0].Size, parts[3].Size)
	}

	boot := extract(t, raw, parts[0].Start, parts[0].Size)
	varfs := extract(t, raw, parts[2].Start, parts[2].Size)
	root := extract(t, raw, parts[4].Start, parts[4].Size)
	if got := blkid(t, boot, "TYPE"); got != "ext2" {
		t.Errorf("boot filesystem %q, want ext2", got)
	}
	if got := blkid(t, varfs, "LABEL"); got != "var" {
		t.Errorf("var label %q", got)
	}
	if got := blkid(t, root, "LABEL"); got != "cloudimg-rootfs" {
		t.Errorf("root label %q", got)
	}
	// finalise.d ran chrooted into the image with every partition
	// mounted: what it wrote under /var is on the logical partition.
	if got := debugfsCat(t, varfs, "/user-finalise-d"); got != "finalise.d ran\n" {
		t.Errorf("/var/user-finalise-d on the var partition: %q", got)
	}
	bootUUID := blkid(t, boot, "UUID")
	fstab := debugfsCat(t, root, "/etc/fstab")
	for _, line := range []string{
		"LABEL=cloudimg-rootfs / ext4 defaults 0 1",
		"UUID=" + bootUUID + " /boot ext2 defaults 0 2",
		"LABEL=var /var ext4 defaults 0 0",
	} {
		if bootUUID == "" || !strings.Contains(fstab, line+"\n") {
			t.Errorf("fstab lacks %q:\n%s", line, fstab)
		}
	}
}
