package machine

import (
	"fmt"
	"os"
	"strings"

	"github.com/dibvm/dibvm/vmimage"
)

// The helper's root is its initramfs: the kernel holds the archive in
// memory while it unpacks it into another copy, then frees the first.
// Booting needs room for both plus the kernel and the agent; less ends
// in "VFS: Unable to mount root fs", a panic that names nothing a user
// can act on. bootOverheadMiB is the kernel, the agent, the pages the
// unpacked files round up to and a margin, beside the two copies
// (measured with a 187 MiB archive under TCG: 600 MiB panics, 640 boots,
// so 266 MiB beside the copies was enough and 226 was not).
const bootOverheadMiB = 320

// MinMemoryMiB is the least memory, in MiB, the helper VM boots app in.
// app.Initrd holds the base, app's tool layers and the agent, one archive
// after another, and the kernel holds and unpacks all of them: its size
// counts the layers.
func MinMemoryMiB(app *vmimage.Appliance) (int, error) {
	fi, err := os.Stat(app.Initrd)
	if err != nil {
		return 0, err
	}
	return int(2*((fi.Size()+1<<20-1)>>20)) + bootOverheadMiB, nil
}

// checkMemory refuses, before QEMU starts, a memory size the appliance
// cannot boot in.
func checkMemory(opts Options) error {
	least, err := MinMemoryMiB(opts.Appliance)
	if err != nil {
		return fmt.Errorf("the helper appliance: %w", err)
	}
	if opts.Memory < least {
		return fmt.Errorf("--memory %d: the helper VM unpacks its appliance%s in memory and needs at least %d MiB to boot: give %d or more", opts.Memory, withLayers(opts.Appliance), least, least)
	}
	return nil
}

// withLayers names app's tool layers, which raise the floor, for the
// message that refuses too little memory.
func withLayers(app *vmimage.Appliance) string {
	var names []string
	for _, l := range app.Layers {
		names = append(names, l.Layer.Name)
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return " (with the " + names[0] + " tool layer)"
	}
	return " (with the " + strings.Join(names, ", ") + " tool layers)"
}
