package diskimage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// efiLayout is block-device-efi's: an ESP, a BIOS boot partition, and an
// ext4 root that takes the rest.
func efiLayout() *api.Layout {
	return &api.Layout{Label: "gpt", Align: mib, Partitions: []api.Partition{
		{Name: "ESP", Type: "EF00", Size: api.Size{Bytes: 16 * mib}, FS: &api.Filesystem{Type: "vfat", Label: "efi", MountPoint: "/boot/efi"}},
		{Name: "BSP", Type: "EF02", Size: api.Size{Bytes: 8 * mib}},
		{Name: "root", Type: "8300", Size: api.Size{Percent: 100}, FS: &api.Filesystem{Type: "ext4", MountPoint: "/", FsckPassno: 1}}}}
}

// fakeMaker makes images with the tools and mounts only recorded: the
// loop device is a file in a temporary directory, where its partitions
// appear as the kernel would make them.
func fakeMaker(t *testing.T, spec *api.Spec) (*Maker, *toolrun.Fake, *[]string) {
	t.Helper()
	dev := t.TempDir()
	loop := filepath.Join(dev, "loop7")
	for n := 1; n <= 8; n++ { // logical partitions are numbered from 5
		os.WriteFile(fmt.Sprintf("%sp%d", loop, n), nil, 0o644)
	}
	run := &toolrun.Fake{Reply: func(call []string) ([]byte, error) {
		switch call[0] {
		case "losetup":
			return []byte(loop + "\n"), nil
		case "blockdev":
			return []byte("536870912\n"), nil // 512 MiB
		}
		return nil, nil
	}}
	var mounts []string
	m := &Maker{Spec: spec, Target: t.TempDir(), Run: run,
		Mount: func(src, dst, fstype string, flags uintptr, data string) error {
			mounts = append(mounts, strings.TrimPrefix(src, dev+"/")+" "+fstype+" "+dst)
			return nil
		},
		Unmount: func(dst string, flags int) error { mounts = append(mounts, "umount "+dst); return nil },
	}
	return m, run, &mounts
}

func TestMakeAnEFIImage(t *testing.T) {
	spec := &api.Spec{Layout: efiLayout(), RootLabel: "cloudimg-rootfs", MaxOnlineResize: 4096, MkfsOptions: "-O ^metadata_csum"}
	m, run, mounts := fakeMaker(t, spec)
	img, err := m.Make("/dev/vdc", 512*mib)
	if err != nil {
		t.Fatal(err)
	}
	loop := img.Loop
	want := []string{
		"losetup --find --show --partscan --sizelimit 536870912 /dev/vdc",
		"sfdisk --quiet --wipe always " + loop,
		"mkfs.vfat -n EFI " + loop + "p1",
		"blockdev --getsize64 " + loop + "p3",
		"mkfs.ext4 -F -q -L cloudimg-rootfs -i 4096 -E resize=4096 -O ^metadata_csum " + loop + "p3",
	}
	if got := run.Lines(); !slices.Equal(got, want) {
		t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	script := "label: gpt\nunit: sectors\n" +
		`start=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP"` + "\n" +
		`start=34816, size=16384, type=21686148-6449-6E6F-744E-656564454649, name="BSP"` + "\n" +
		`start=51200, size=995328, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"` + "\n"
	if run.Stdins[1] != script {
		t.Errorf("sfdisk script:\n%s\nwant:\n%s", run.Stdins[1], script)
	}
	// Shallowest first: / before /boot/efi.
	wantMounts := []string{"loop7p3 ext4 " + m.Target, "loop7p1 vfat " + filepath.Join(m.Target, "boot/efi")}
	if !slices.Equal(*mounts, wantMounts) {
		t.Errorf("mounted %q, want %q", *mounts, wantMounts)
	}
	if err := img.Release(); err != nil {
		t.Fatal(err)
	}
	if got := run.Lines()[len(want):]; !slices.Equal(got, []string{"fstrim " + filepath.Join(m.Target, "boot/efi"), "fstrim " + m.Target, "losetup -d " + loop}) {
		t.Errorf("release ran %q", got)
	}
	if got := (*mounts)[2:]; !slices.Equal(got, []string{"umount " + filepath.Join(m.Target, "boot/efi"), "umount " + m.Target}) {
		t.Errorf("release unmounted %q", got)
	}
}

func TestFstabAndExports(t *testing.T) {
	l := efiLayout()
	l.Partitions = append(l.Partitions, api.Partition{Name: "boot", Size: api.Size{Bytes: 64 * mib},
		FS: &api.Filesystem{Type: "ext4", MountPoint: "/boot", FstabOptions: "nodev", FsckPassno: 2}})
	spec := &api.Spec{Layout: l, RootLabel: "cloudimg-rootfs"}
	m, run, _ := fakeMaker(t, spec)
	run.Reply = func(call []string) ([]byte, error) { return []byte("1234-abcd\n"), nil }
	img := &Image{Loop: "/dev/loop0", Parts: []string{"/dev/loop0p1", "/dev/loop0p2", "/dev/loop0p3", "/dev/loop0p4"}, maker: m}
	os.MkdirAll(filepath.Join(m.Target, "etc"), 0o755)
	// A cloud image's own, which the image's replaces.
	os.WriteFile(filepath.Join(m.Target, "etc/fstab"), []byte("LABEL=cloudimg-rootfs / xfs defaults 0 0\n"), 0o644)
	if err := m.Fstab(img); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(m.Target, "etc/fstab"))
	want := "LABEL=EFI /boot/efi vfat defaults 0 0\n" +
		"LABEL=cloudimg-rootfs / ext4 defaults 0 1\n" +
		"UUID=1234-abcd /boot ext4 nodev 0 2\n"
	if string(data) != want {
		t.Errorf("fstab:\n%s\nwant:\n%s", data, want)
	}
	if got := run.Lines(); !slices.Equal(got, []string{"blkid -s UUID -o value /dev/loop0p4"}) {
		t.Errorf("ran %q", got)
	}
	wantEnv := []string{"DIB_BOOT_LABEL=", "IMAGE_BLOCK_DEVICE=/dev/loop0",
		"IMAGE_BLOCK_DEVICES=[image0]=/dev/loop0 [ESP]=/dev/loop0p1 [BSP]=/dev/loop0p2 [root]=/dev/loop0p3 [boot]=/dev/loop0p4"}
	if got := Exports(spec, img); !slices.Equal(got, wantEnv) {
		t.Errorf("exports:\n%q\nwant:\n%q", got, wantEnv)
	}
	run.Reply = func([]string) ([]byte, error) { return nil, errors.New("exit status 2") }
	if err := m.Fstab(img); err == nil || err.Error() != "blkid /dev/loop0p4: exit status 2" {
		t.Errorf("blkid failing: %v", err)
	}
}

func TestMBRWithLogicalPartitions(t *testing.T) {
	l := &api.Layout{Label: "mbr", Align: mib, Partitions: []api.Partition{
		{Name: "boot", Flags: []string{"boot", "primary"}, Size: api.Size{Bytes: 100 * mib}},
		{Name: "root", Type: "0x83", Size: api.Size{Bytes: 200 * mib}},
		{Name: "swap", Type: "0x82", Size: api.Size{Percent: 100}}}}
	m, run, _ := fakeMaker(t, &api.Spec{Layout: l})
	if _, err := m.Make("/dev/vdc", 512*mib); err != nil {
		t.Fatal(err)
	}
	// The extended partition runs from after the primary one to the end
	// of the disk; each logical one starts an alignment after its EBR.
	want := "label: dos\nunit: sectors\n" +
		"start=2048, size=204800, type=83, bootable\n" +
		"start=206848, size=841728, type=f\n" +
		"start=208896, size=409600, type=83\n" +
		"start=620544, size=428032, type=82\n"
	if run.Stdins[1] != want {
		t.Errorf("sfdisk script:\n%s\nwant:\n%s", run.Stdins[1], want)
	}
}

func TestMkfsArgs(t *testing.T) {
	for _, c := range []struct {
		fs    api.Filesystem
		label string
		want  string
	}{
		{api.Filesystem{Type: "xfs", UUID: "u-1", Options: "-n ftype=1"}, "root", "mkfs.xfs -f -q -L root -m uuid=u-1 -n ftype=1 -x"},
		{api.Filesystem{Type: "ext3", UUID: "u-2"}, "", "mkfs.ext3 -F -q -U u-2 -x"},
		{api.Filesystem{Type: "vfat"}, "", "mkfs.vfat -x"},
	} {
		args, err := mkfsArgs(&c.fs, c.label, []string{"-x"})
		if got := strings.Join(args, " "); err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.fs.Type, got, err, c.want)
		}
	}
	if _, err := mkfsArgs(&api.Filesystem{Type: "btrfs"}, "", nil); err == nil || !strings.Contains(err.Error(), `mkfs type "btrfs" is not supported`) {
		t.Errorf("btrfs: %v", err)
	}
}

func TestTreeSize(t *testing.T) {
	run := &toolrun.Fake{Reply: func([]string) ([]byte, error) { return []byte("123456\t/build/built\n"), nil }}
	if n, err := TreeSize(run, "/build/built"); n != 123456 || err != nil {
		t.Errorf("TreeSize = %d, %v", n, err)
	}
	if got := run.Lines(); !slices.Equal(got, []string{"du -x -s -B1 /build/built"}) {
		t.Errorf("ran %q", got)
	}
	run.Reply = nil
	if _, err := TreeSize(run, "/x"); err == nil || err.Error() != "du /x: no output" {
		t.Errorf("no output: %v", err)
	}
}

// lvmLayout is block-device-efi-lvm's shape, smaller: the root partition
// a physical volume, its group holding a root and a /home volume.
func lvmLayout() *api.Layout {
	return &api.Layout{Label: "gpt", Align: mib, Partitions: []api.Partition{
		{Name: "ESP", Type: "EF00", Size: api.Size{Bytes: 16 * mib}, FS: &api.Filesystem{Type: "vfat", MountPoint: "/boot/efi"}},
		{Name: "root", Size: api.Size{Percent: 100}}},
		LVM: &api.LVM{
			PVs: []api.PhysicalVolume{{Name: "pv", Base: "root", Options: []string{"--force"}}},
			VGs: []api.VolumeGroup{{Name: "vg", Bases: []string{"pv"}, Options: []string{"--force"}}},
			LVs: []api.LogicalVolume{
				{Name: "lv_root", VG: "vg", Extents: "60%VG", FS: &api.Filesystem{Type: "xfs", Label: "img-rootfs", MountPoint: "/"}},
				{Name: "lv-home", VG: "vg", Size: 100 * mib, Options: []string{"--zero", "y"}, FS: &api.Filesystem{Type: "ext4", MountPoint: "/home"}}}}}
}

func TestMakeAnLVMImage(t *testing.T) {
	spec := &api.Spec{Layout: lvmLayout()}
	m, run, mounts := fakeMaker(t, spec)
	m.MapperDir = t.TempDir()
	os.WriteFile(filepath.Join(m.MapperDir, "vg-lv_root"), nil, 0o644)
	os.WriteFile(filepath.Join(m.MapperDir, "vg-lv--home"), nil, 0o644)
	img, err := m.Make("/dev/vdc", 512*mib)
	if err != nil {
		t.Fatal(err)
	}
	loop := img.Loop
	lvm := "--devices " + loop + "p2 --config " + lvmConfig + " "
	want := []string{
		"losetup --find --show --partscan --sizelimit 536870912 /dev/vdc",
		"sfdisk --quiet --wipe always " + loop,
		// Only the image's physical volume, whatever else the helper has.
		"pvcreate " + lvm + loop + "p2 --force",
		"vgcreate " + lvm + "vg " + loop + "p2 --force",
		"lvcreate " + lvm + "--yes --wipesignatures y --name lv_root -l 60%VG vg",
		"lvcreate " + lvm + "--yes --wipesignatures y --name lv-home -L 104857600B --zero y vg",
		"mkfs.vfat " + loop + "p1",
		"mkfs.xfs -f -q -L img-rootfs " + filepath.Join(m.MapperDir, "vg-lv_root"),
		"mkfs.ext4 -F -q " + filepath.Join(m.MapperDir, "vg-lv--home"),
	}
	if got := run.Lines(); !slices.Equal(got, want) {
		t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantMounts := []string{"vg-lv_root xfs " + m.Target, "loop7p1 vfat " + filepath.Join(m.Target, "boot/efi"), "vg-lv--home ext4 " + filepath.Join(m.Target, "home")}
	for i := range *mounts {
		(*mounts)[i] = strings.TrimPrefix((*mounts)[i], m.MapperDir+"/")
	}
	if !slices.Equal(*mounts, wantMounts) {
		t.Errorf("mounted %q, want %q", *mounts, wantMounts)
	}
	wantEnv := "IMAGE_BLOCK_DEVICES=[image0]=" + loop + " [ESP]=" + loop + "p1 [root]=" + loop + "p2 [lv_root]=" + filepath.Join(m.MapperDir, "vg-lv_root") + " [lv-home]=" + filepath.Join(m.MapperDir, "vg-lv--home")
	if got := Exports(spec, img); got[len(got)-1] != wantEnv {
		t.Errorf("exports %q\nwant %q", got, wantEnv)
	}
	n := len(run.Lines())
	if err := img.Release(); err != nil {
		t.Fatal(err)
	}
	// The group is deactivated before the loop device goes: the image
	// leaves the helper with nothing of it in use.
	got := run.Lines()[n:]
	if len(got) < 2 || got[len(got)-2] != "vgchange "+lvm+"--activate n vg" || got[len(got)-1] != "losetup -d "+loop {
		t.Errorf("release ran %q", got)
	}
}

func TestLvcreateArgs(t *testing.T) {
	for _, c := range []struct {
		lv   api.LogicalVolume
		want string
	}{
		{api.LogicalVolume{Name: "tp", VG: "vg", Type: "thin-pool", Size: 8 * mib}, "--yes --name tp --type thin-pool -L 8388608B vg"},
		{api.LogicalVolume{Name: "t", VG: "vg", Type: "thin", ThinPool: "tp", Size: 4 * mib}, "--yes --name t --type thin --thin-pool tp -V 4194304B vg"},
		{api.LogicalVolume{Name: "l", VG: "vg", Extents: "10%FREE", Options: []string{"--zero", "n"}}, "--yes --wipesignatures y --name l -l 10%FREE --zero n vg"},
	} {
		if got := strings.Join(lvcreateArgs(c.lv), " "); got != c.want {
			t.Errorf("%s: %s\nwant %s", c.lv.Name, got, c.want)
		}
	}
}
