package dibbuild

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/chroot"
	"github.com/dibvm/dibvm/guestagent/diskimage"
	"github.com/dibvm/dibvm/guestagent/sysinit"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// blockDevice, for disk image outputs, makes the image and moves the
// tree into it: from here on TARGET_ROOT is the mounted image.
func (b *build) blockDevice() error {
	if b.spec.Layout == nil {
		return nil
	}
	if err := b.outside("block-device.d", ""); err != nil {
		return err
	}
	b.unmountTarget()
	// The tree leaves for the image whole: what a hook left mounted in
	// it goes first, as DIB's unmount_dir does.
	for _, mp := range chroot.UnmountBelow(b.target, unix.Unmount) {
		fmt.Fprintf(b.out, "Unmounting %s, which a hook left mounted in the tree\n", mp)
	}
	if err := unix.Unmount(b.target, 0); err != nil {
		return fmt.Errorf("unmount the tree: %w", err)
	}
	n, err := diskimage.TreeSize(b.run, b.built)
	if err != nil {
		return err
	}
	size := diskimage.Size(n, b.spec)
	disk, err := sysinit.FindDisk(api.OutputSerial, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "Creating a %d MiB %s image\n", size>>20, b.spec.Layout.Label)
	maker := diskimage.NewMaker(b.spec, b.target)
	if b.img, err = maker.Make(disk, size); err != nil {
		return err
	}
	// The later phases hear of the image's devices, as disk-image-create
	// tells them after block-device.d.
	for _, kv := range diskimage.Exports(b.spec, b.img) {
		k, v, _ := strings.Cut(kv, "=")
		b.setEnv(k, v)
	}
	if err := toolrun.Run(b.run, "cp", "-a", b.built+"/.", b.target+"/"); err != nil {
		return fmt.Errorf("copy the tree into the image: %w", err)
	}
	if err := maker.Fstab(b.img); err != nil {
		return err
	}
	return b.mountTarget()
}
