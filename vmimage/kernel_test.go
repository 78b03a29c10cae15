package vmimage

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/dibvm/dibvm/vmimage/debrepo"
	"github.com/dibvm/dibvm/vmimage/initramfs"
)

// elfModule is the smallest ELF64 relocatable file debug/elf reads with a
// .modinfo section holding fields ("key=value"), as a kernel module has.
func elfModule(fields ...string) []byte {
	modinfo := []byte(strings.Join(fields, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	le := binary.LittleEndian
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF")
	hdr[4], hdr[5], hdr[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le.PutUint16(hdr[16:], 1)        // ET_REL
	le.PutUint16(hdr[18:], 62)       // EM_X86_64
	le.PutUint32(hdr[20:], 1)
	le.PutUint64(hdr[40:], uint64(64+len(modinfo)+len(shstrtab))) // section headers
	le.PutUint16(hdr[52:], 64)
	le.PutUint16(hdr[58:], 64) // a section header's size
	le.PutUint16(hdr[60:], 3)  // null, .modinfo, .shstrtab
	le.PutUint16(hdr[62:], 2)  // .shstrtab's index
	section := func(name, typ uint32, off, size int) []byte {
		s := make([]byte, 64)
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[24:], uint64(off))
		le.PutUint64(s[32:], uint64(size))
		return s
	}
	return bytes.Join([][]byte{
		hdr, modinfo, shstrtab,
		make([]byte, 64),
		section(1, 1, 64, len(modinfo)),                // .modinfo, PROGBITS
		section(10, 3, 64+len(modinfo), len(shstrtab)), // .shstrtab, STRTAB
	}, nil)
}

func TestModuleNeeds(t *testing.T) {
	ko := elfModule("license=GPL", "depends=crc16,mbcache,jbd2", "softdep=pre: crc32c post: other", "softdep=post: after", "alias=fs-ext4")
	got, err := moduleNeeds(ko)
	if err != nil {
		t.Fatal(err)
	}
	want := []need{{"crc16", true}, {"mbcache", true}, {"jbd2", true}, {"crc32c", false}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("moduleNeeds = %v, want %v", got, want)
	}
	if got, err := moduleNeeds(elfModule("depends=")); err != nil || len(got) != 0 {
		t.Errorf("an empty depends= gives %v, %v", got, err)
	}
	if _, err := moduleNeeds([]byte("not an ELF file")); err == nil {
		t.Error("moduleNeeds of a non-ELF file: no error")
	}
}

func TestAliasLines(t *testing.T) {
	ko := elfModule("alias=devname:loop-control", "alias=char-major-10-237", "alias=block-major-7-*", "alias=fs-loop", "depends=")
	aliases, devnames, err := aliasLines(ko, "loop")
	if err != nil {
		t.Fatal(err)
	}
	wantAliases := []string{
		"alias devname:loop-control loop", "alias char-major-10-237 loop",
		"alias block-major-7-* loop", "alias fs-loop loop",
	}
	if !reflect.DeepEqual(aliases, wantAliases) {
		t.Errorf("aliases = %q, want %q", aliases, wantAliases)
	}
	if want := []string{"loop loop-control c10:237"}; !reflect.DeepEqual(devnames, want) {
		t.Errorf("devnames = %q, want %q", devnames, want)
	}
	// A block device's node; a devname with no device numbers is none.
	if _, d, _ := aliasLines(elfModule("alias=devname:mapper/control", "alias=block-major-10-236"), "dm_mod"); !reflect.DeepEqual(d, []string{"dm_mod mapper/control b10:236"}) {
		t.Errorf("block devname = %q", d)
	}
	if _, d, _ := aliasLines(elfModule("alias=devname:fuse"), "fuse"); d != nil {
		t.Errorf("a devname without a major: %q", d)
	}
}

func TestModuleNames(t *testing.T) {
	for file, want := range map[string][2]string{
		"kernel/fs/ext4/ext4.ko":         {"ext4", "kernel/fs/ext4/ext4.ko"},
		"kernel/drivers/md/dm-mod.ko.xz": {"dm_mod", "kernel/drivers/md/dm-mod.ko"},
		"kernel/x/virtio_blk.ko.zst":     {"virtio_blk", "kernel/x/virtio_blk.ko"},
	} {
		if got := [2]string{moduleName(file), plainName(file)}; got != want {
			t.Errorf("%s: name and file %q, want %q", file, got, want)
		}
	}
}

func TestDecompressModule(t *testing.T) {
	plain := elfModule("name=m")
	var xzBuf bytes.Buffer
	w, err := xz.NewWriter(&xzBuf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	enc, _ := zstd.NewWriter(nil)
	zst := enc.EncodeAll(plain, nil)
	enc.Close()
	for name, data := range map[string][]byte{"m.ko": plain, "m.ko.xz": xzBuf.Bytes(), "m.ko.zst": zst} {
		if got, err := decompressModule(name, data); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("decompressModule(%s): %d bytes, %v", name, len(got), err)
		}
	}
	if _, err := decompressModule("m.ko.gz", plain); err == nil {
		t.Error("a .ko.gz: no error")
	}
	if _, err := decompressModule("m.ko.xz", plain); err == nil {
		t.Error("a .ko.xz that is not xz: no error")
	}
}

// testKernel: ext4 needs jbd2 (xz-compressed) and crc16, which is built
// in; jbd2 asks for crc32c first, which the kernel does not have.
func testKernel(t *testing.T) *kernel {
	var jbd2 bytes.Buffer
	w, _ := xz.NewWriter(&jbd2)
	w.Write(elfModule("depends=crc16", "softdep=pre: crc32c"))
	w.Close()
	return &kernel{
		Version: "6.1.0-test",
		builtin: []byte("kernel/lib/crc16.ko\n"),
		files: map[string][]byte{
			"kernel/fs/ext4/ext4.ko":       elfModule("depends=jbd2,crc16", "alias=fs-ext4"),
			"kernel/fs/jbd2/jbd2.ko.xz":    jbd2.Bytes(),
			"kernel/drivers/block/loop.ko": elfModule("depends=", "alias=devname:loop-control", "alias=char-major-10-237"),
			"kernel/unused.ko":             elfModule("depends="),
		},
	}
}

func TestClosure(t *testing.T) {
	k := testKernel(t)
	mods, err := k.closure([]string{"ext4", "crc16"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mods {
		got = append(got, m.file+": "+strings.Join(m.deps, " "))
	}
	want := []string{"kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko", "kernel/fs/jbd2/jbd2.ko: "}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure = %q, want %q", got, want)
	}
	if _, err := k.closure([]string{"btrfs"}); err == nil || !strings.Contains(err.Error(), "kernel 6.1.0-test has no module btrfs") {
		t.Errorf("a module the kernel lacks: %v", err)
	}
}

func TestAddModules(t *testing.T) {
	k := testKernel(t)
	tr := initramfs.NewTree()
	if err := k.addModules(tr, []string{"ext4", "loop"}); err != nil {
		t.Fatal(err)
	}
	dir := "usr/lib/modules/6.1.0-test/"
	for name, want := range map[string]string{
		"modules.dep":     "kernel/drivers/block/loop.ko:\nkernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\nkernel/fs/jbd2/jbd2.ko:\n",
		"modules.alias":   "alias devname:loop-control loop\nalias char-major-10-237 loop\nalias fs-ext4 ext4\n",
		"modules.devname": "loop loop-control c10:237\n",
		"modules.builtin": "kernel/lib/crc16.ko\n",
	} {
		n, ok := tr.Get(dir + name)
		if !ok || string(n.Data) != want {
			t.Errorf("%s: %q, want %q", name, n.Data, want)
		}
	}
	// Modules are stored decompressed, under their plain names.
	if n, ok := tr.Get(dir + "kernel/fs/jbd2/jbd2.ko"); !ok || !bytes.HasPrefix(n.Data, []byte("\x7fELF")) {
		t.Error("jbd2.ko is not in the tree decompressed")
	}
	if _, ok := tr.Get(dir + "kernel/unused.ko"); ok {
		t.Error("a module nothing needs is in the tree")
	}
}

func TestKernelPackage(t *testing.T) {
	idx, err := debrepo.ParseIndex(strings.NewReader(`Package: linux-image-amd64
Version: 6.1.1
Architecture: amd64
Depends: linux-image-6.1.0-9-amd64 (= 6.1.1)

Package: linux-image-6.1.0-9-amd64
Version: 6.1.1
Architecture: amd64

Package: linux-image-arm64
Version: 6.1.1
Architecture: arm64
Depends: initramfs-tools
`))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := kernelPackage(idx, "amd64"); err != nil || p.Name != "linux-image-6.1.0-9-amd64" {
		t.Errorf("kernelPackage(amd64) = %v, %v", p, err)
	}
	if _, err := kernelPackage(idx, "arm64"); err == nil || !strings.Contains(err.Error(), "depends on no kernel image") {
		t.Errorf("a metapackage without a kernel: %v", err)
	}
	if _, err := kernelPackage(idx, "riscv64"); err == nil || !strings.Contains(err.Error(), "the mirror has no linux-image-riscv64") {
		t.Errorf("no metapackage: %v", err)
	}
}
