package blockdevice

import (
	"strings"
	"testing"
)

// A DIB-style MBR layout: a primary boot partition, then logical
// partitions for /var, swap-like space and /.
const mbrLogical = `- local_loop:
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
      - name: var
        size: 25%
        mkfs:
          mount:
            mount_point: /var
      - name: spare
        type: '0x82'
        size: 64MiB
      - name: root
        size: 100%
        mkfs:
          label: cloudimg-rootfs
          mount:
            mount_point: /
`

func TestPlaceMBRLogical(t *testing.T) {
	l, err := Parse([]byte(mbrLogical), "")
	if err != nil {
		t.Fatal(err)
	}
	const disk = 1 << 30 // 2097152 sectors
	plan, err := Place(l, disk)
	if err != nil {
		t.Fatal(err)
	}
	// Worked by hand from DIB's MBR arithmetic (1 MiB = 2048 sectors):
	// boot at 2048; the extended partition from 206848 to the end; var
	// a quarter of what is free then, (2097152-206848-2048)*512/4 bytes,
	// one alignment after its EBR, which starts on the next MiB after /var
	// ends; spare and root likewise, root
	// filling the disk.
	want := []Extent{
		{1, 2048, 204800},
		{5, 208896, 472064},
		{6, 2048 * 334, 131072},
		{7, 2048 * 399, 2097152 - 2048*399},
	}
	if len(plan.Partitions) != len(want) {
		t.Fatalf("plan %+v", plan)
	}
	for i, w := range want {
		if plan.Partitions[i] != w {
			t.Errorf("partition %s = %+v, want %+v", l.Partitions[i].Name, plan.Partitions[i], w)
		}
	}
	if x := plan.Extended; x == nil || *x != (Extent{2, 206848, 2097152 - 206848}) {
		t.Errorf("extended %+v", x)
	}
	for i, e := range plan.Partitions {
		if e.Start%2048 != 0 {
			t.Errorf("partition %d starts at %d, off the 1 MiB alignment", i, e.Start)
		}
		if i > 0 && e.Start < plan.Partitions[i-1].Start+plan.Partitions[i-1].Size {
			t.Errorf("partition %d overlaps the one before", i)
		}
		if i > 1 && e.Start-2048 < plan.Partitions[i-1].Start+plan.Partitions[i-1].Size {
			t.Errorf("logical partition %d leaves no room for its EBR", i)
		}
	}
}

func TestPlaceMBRDefaultIsOnePrimary(t *testing.T) {
	l, err := Parse([]byte(mbrDefault), "")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Place(l, 3<<30)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Extended != nil || len(plan.Partitions) != 1 ||
		plan.Partitions[0] != (Extent{1, 2048, 3<<30/512 - 4096}) {
		t.Errorf("plan %+v %+v", plan, plan.Extended)
	}
}

func TestPlaceGPTWholeMiB(t *testing.T) {
	l, err := Parse([]byte(efiDefault), "")
	if err != nil {
		t.Fatal(err)
	}
	const disk = 2<<30 + 64<<10 // not a whole MiB, as images are sized
	plan, err := Place(l, disk)
	if err != nil {
		t.Fatal(err)
	}
	want := []Extent{
		{1, 2048, 550 * 2048},
		{2, 551 * 2048, 8 * 2048},
		{3, 559 * 2048, (2048 - 2 - 558) * 2048},
	}
	for i, w := range want {
		if plan.Partitions[i] != w {
			t.Errorf("partition %s = %+v, want %+v", l.Partitions[i].Name, plan.Partitions[i], w)
		}
	}
}

func TestPlaceRefusesWhatDoesNotFit(t *testing.T) {
	l, err := Parse([]byte(strings.Replace(mbrLogical, "size: 64MiB", "size: 2GiB", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Place(l, 1<<30)
	if err == nil || !strings.Contains(err.Error(), "partition spare") || !strings.Contains(err.Error(), "DIB_IMAGE_SIZE") {
		t.Errorf("Place = %v, want an error naming partition spare and DIB_IMAGE_SIZE", err)
	}
}

func TestParseMBRRules(t *testing.T) {
	head := "- local_loop: {name: image0}\n- partitioning:\n    base: image0\n    label: %s\n    partitions:\n"
	root := "      - {name: root, size: 100%, mkfs: {mount: {mount_point: /}}}\n"
	prim := func(n string) string { return "      - {name: " + n + ", flags: [primary], size: 10MiB}\n" }
	logi := func(n string) string { return "      - {name: " + n + ", size: 10MiB}\n" }
	mbr := strings.Replace(head, "%s", "mbr", 1)
	gpt := strings.Replace(head, "%s", "gpt", 1)
	for in, want := range map[string]string{
		mbr + logi("a") + prim("b") + root:                                         "partition b is primary but follows a logical partition",
		mbr + prim("a") + prim("b") + prim("c") + prim("d") + prim("e") + root:     "5 primary partitions",
		mbr + prim("a") + prim("b") + prim("c") + prim("d") + root:                 "no slot for the extended partition",
		gpt + prim("a") + root:                                                     "primary flag is for mbr",
		mbr + "      - {name: a, flags: [bootable], size: 1MiB}\n" + root:          `unknown flag "bootable"`,
		mbr + "      - {name: a}\n" + root:                                         "partition a: no size",
		strings.Replace(mbr, "label: mbr", "label: mbr\n    align: 100", 1) + root: `align "100"`,
	} {
		if _, err := Parse([]byte(in), ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(\n%s) = %v, want %q", in, err, want)
		}
	}
	// Four primaries and nothing logical is a full, valid MBR.
	if _, err := Parse([]byte(mbr+prim("a")+prim("b")+prim("c")+strings.Replace(root, "size:", "flags: [primary], size:", 1)), ""); err != nil {
		t.Error(err)
	}
}
