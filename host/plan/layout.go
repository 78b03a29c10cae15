package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/dibvm/dibvm/elements"
	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/guestagent/api"
)

// layout reads the block device configuration: DIB_BLOCK_DEVICE_CONFIG
// (YAML, or file:// and a path), else block-device-<arch>.yaml or
// block-device-default.yaml of the elements.
func layout(o Options, els []*elements.Element) (*api.Layout, error) {
	var data []byte
	var where string
	if cfg := o.BlockDeviceConfig; cfg != "" {
		where = "DIB_BLOCK_DEVICE_CONFIG"
		data = []byte(cfg)
		if path, ok := strings.CutPrefix(cfg, "file://"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("DIB_BLOCK_DEVICE_CONFIG: %w", err)
			}
			data, where = b, path
		}
	} else {
	search:
		for _, name := range []string{"block-device-" + o.Arch + ".yaml", "block-device-default.yaml"} {
			for _, e := range els {
				if b, err := fs.ReadFile(e.FS, name); err == nil {
					data, where = b, "element "+e.Name+": "+name
					break search
				}
			}
		}
		if data == nil {
			return nil, errors.New("a disk image needs a block device layout: add vm (which brings block-device-mbr) or a block-device-* element, or set DIB_BLOCK_DEVICE_CONFIG")
		}
	}
	for _, k := range blockdevice.UnknownKeys(data) {
		fmt.Fprintf(o.Stderr, "dibvm: warning: %s: %s is no block device setting, and is ignored (as DIB does): is it misspelt?\n", where, k)
	}
	l, err := blockdevice.Parse(data, o.FSType)
	if err != nil {
		// Each problem on its own line, each saying where it is.
		return nil, fmt.Errorf("%s: %s", where, strings.ReplaceAll(err.Error(), "\n", "\n"+where+": "))
	}
	if o.ImageSizeGB > 0 {
		// The guest's own sizing: GiB, in 64 KiB steps.
		size := (int64(o.ImageSizeGB*(1<<30)) + 64<<10 - 1) / (64 << 10) * (64 << 10)
		if _, err := blockdevice.Place(l, size); err != nil {
			return nil, fmt.Errorf("%s with --image-size %g (or DIB_IMAGE_SIZE): %w", where, o.ImageSizeGB, err)
		}
	}
	return l, nil
}

// hasESP says whether the layout has an EFI system partition.
func hasESP(l *api.Layout) bool {
	for _, p := range l.Partitions {
		if strings.EqualFold(p.Type, "EF00") || strings.EqualFold(p.Type, "0xef") || (p.FS != nil && p.FS.MountPoint == "/boot/efi") {
			return true
		}
	}
	return false
}

// fitScratch makes sure the output disk, which is the scratch disk's
// size, holds the layout's fixed-size partitions with room beside them
// (block-device-efi-lvm's are over 40 GB): it raises dibvm's default
// size, and refuses a --scratch-size that is too small.
func fitScratch(o *Options, l *api.Layout) error {
	if l == nil {
		return nil
	}
	need := (blockdevice.Fixed(l) + 4<<30 + mib - 1) &^ (mib - 1)
	switch {
	case o.ScratchSize >= need:
	case o.ScratchSizeGiven:
		return fmt.Errorf("--scratch-size %dM cannot hold this layout's fixed-size partitions (%d MiB) and the image's work: give at least %dM", o.ScratchSize>>20, blockdevice.Fixed(l)>>20, need>>20)
	default:
		o.ScratchSize = need
	}
	return nil
}

const mib = 1 << 20
