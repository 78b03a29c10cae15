package imageroot

import (
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	esp := Partition{Dev: "/dev/vdb1", Number: 1, FSType: "vfat", Label: "MKFS_ESP", PartType: typeESP}
	bios := Partition{Dev: "/dev/vdb2", Number: 2, PartType: "21686148-6449-6e6f-744e-656564454649"}
	for _, c := range []struct {
		name            string
		parts           []Partition
		root, boot, efi string
		err             string
	}{
		{name: "a filesystem without a partition table",
			parts: []Partition{{Dev: "/dev/vdb", FSType: "ext4"}}, root: "/dev/vdb"},
		{name: "dibvm's and DIB's vm layout under UEFI",
			parts: []Partition{esp, bios, {Dev: "/dev/vdb3", Number: 3, FSType: "ext4", Label: "cloudimg-rootfs"}},
			root:  "/dev/vdb3", efi: "/dev/vdb1"},
		{name: "CentOS's GenericCloud: BIOS boot, ESP, /boot, root on XFS",
			parts: []Partition{
				{Dev: "/dev/vdb1", Number: 1},
				{Dev: "/dev/vdb2", Number: 2, FSType: "vfat", PartType: typeESP},
				{Dev: "/dev/vdb3", Number: 3, FSType: "xfs", Label: "boot", PartType: typeLinuxBoot},
				{Dev: "/dev/vdb4", Number: 4, FSType: "xfs", Label: "root"},
			},
			root: "/dev/vdb4", boot: "/dev/vdb3", efi: "/dev/vdb2"},
		{name: "an MBR image with a swap partition after the root",
			parts: []Partition{
				{Dev: "/dev/vdb1", Number: 1, FSType: "ext4", PartType: "0x83"},
				{Dev: "/dev/vdb2", Number: 2, FSType: "swap", PartType: "0x82"},
			},
			root: "/dev/vdb1"},
		{name: "partitions listed out of order: the last by number is the root",
			parts: []Partition{
				{Dev: "/dev/vdb10", Number: 10, FSType: "ext4"},
				{Dev: "/dev/vdb9", Number: 9, FSType: "ext4"},
			},
			root: "/dev/vdb10"},
		{name: "a lone /boot is the root",
			parts: []Partition{esp, {Dev: "/dev/vdb2", Number: 2, FSType: "ext4", Label: "boot"}},
			root:  "/dev/vdb2", efi: "/dev/vdb1"},
		{name: "a root on LVM is refused, naming the volume",
			parts: []Partition{esp, {Dev: "/dev/vdb2", Number: 2, FSType: "LVM2_member"}},
			err:   "the image's root must be on /dev/vdb2 (LVM2_member)"},
		{name: "RHEL's install: ESP, /boot on XFS, the root in LVM",
			parts: []Partition{esp, {Dev: "/dev/vdb2", Number: 2, FSType: "xfs", Label: "boot"}, {Dev: "/dev/vdb3", Number: 3, FSType: "LVM2_member"}},
			err:   "the image's root must be on /dev/vdb3 (LVM2_member)"},
		{name: "nothing but LVM",
			parts: []Partition{{Dev: "/dev/vdb1", Number: 1, FSType: "LVM2_member"}},
			err:   "/dev/vdb1 (LVM2_member), which dibvm does not open yet"},
		{name: "no filesystem at all",
			parts: []Partition{{Dev: "/dev/vdb"}}, err: "no filesystem to mount as its root"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := Choose(c.parts)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Choose: %v, want an error saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []struct {
				what string
				got  *Partition
				want string
			}{{"root", l.Root, c.root}, {"/boot", l.Boot, c.boot}, {"ESP", l.EFI, c.efi}} {
				got := ""
				if w.got != nil {
					got = w.got.Dev
				}
				if got != w.want {
					t.Errorf("%s: %q, want %q", w.what, got, w.want)
				}
			}
		})
	}
}

func TestParseExport(t *testing.T) {
	v := parseExport([]byte("DEVNAME=/dev/vdb3\nLABEL=cloudimg-rootfs\nTYPE=ext4\nPART_ENTRY_TYPE=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"))
	if v["TYPE"] != "ext4" || v["LABEL"] != "cloudimg-rootfs" || v["PART_ENTRY_TYPE"] != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" {
		t.Errorf("parseExport: %v", v)
	}
}
