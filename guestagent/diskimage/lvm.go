package diskimage

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// lvmConfig is the helper's LVM configuration, given on every command
// line: no udev in the helper, so LVM makes the device nodes itself and
// waits for no events; no monitoring daemon; no check of thin pools it
// has just made (the helper has no thin_check); no metadata backups in
// the helper's /etc, which goes with it.
const lvmConfig = "devices { use_devicesfile = 0 obtain_device_list_from_udev = 0 } " +
	"global { thin_check_executable = \"\" } " +
	"activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } " +
	"backup { backup = 0 archive = 0 }"

// lvm runs the LVM tool cmd on the image's physical volumes alone:
// --devices makes LVM see no other device, whatever is on the helper's
// other disks and whatever the layout's options say (the host refuses
// options that would widen it).
func (img *Image) lvm(cmd string, args ...string) error {
	full := append([]string{"--devices", strings.Join(img.pvs, ","), "--config", lvmConfig}, args...)
	return toolrun.Run(img.maker.Run, cmd, full...)
}

// makeLVM makes the layout's physical volumes, volume groups and logical
// volumes, in that order as DIB does, on the partitions already made,
// and records the logical volumes' devices.
func (m *Maker) makeLVM(img *Image) error {
	lvm := m.Spec.Layout.LVM
	pvDev := map[string]string{}
	for _, pv := range lvm.PVs {
		dev := img.partition(m.Spec.Layout, pv.Base)
		pvDev[pv.Name] = dev
		img.pvs = append(img.pvs, dev)
	}
	for _, pv := range lvm.PVs {
		if err := img.lvm("pvcreate", append([]string{pvDev[pv.Name]}, pv.Options...)...); err != nil {
			return fmt.Errorf("pv %s: %w", pv.Name, err)
		}
	}
	for _, vg := range lvm.VGs {
		args := []string{vg.Name}
		for _, b := range vg.Bases {
			args = append(args, pvDev[b])
		}
		if err := img.lvm("vgcreate", append(args, vg.Options...)...); err != nil {
			return fmt.Errorf("vg %s: %w", vg.Name, err)
		}
		img.vgs = append(img.vgs, vg.Name)
	}
	for _, lv := range lvm.LVs {
		if err := img.lvm("lvcreate", lvcreateArgs(lv)...); err != nil {
			return fmt.Errorf("lv %s: %w", lv.Name, err)
		}
		dev := filepath.Join(m.MapperDir, api.MapperName(lv.VG, lv.Name))
		if lv.Type == "thin-pool" {
			img.Volumes = append(img.Volumes, dev) // holds no filesystem
			continue
		}
		if err := waitFor(dev, devWait); err != nil {
			return fmt.Errorf("lv %s: %w", lv.Name, err)
		}
		img.Volumes = append(img.Volumes, dev)
	}
	return nil
}

// lvcreateArgs are lvcreate's arguments for lv, as DIB gives them: its
// type and pool, its size in bytes (already whole extents; virtual for
// a thin volume) or extents, its options, its group. --yes and, for a
// linear volume, --wipesignatures clear what an earlier use of the disk
// left, without asking (a pool zeroes what it gives its thin volumes,
// and lvcreate takes no --wipesignatures for one).
func lvcreateArgs(lv api.LogicalVolume) []string {
	args := []string{"--yes"}
	if lv.Type == "" {
		args = append(args, "--wipesignatures", "y")
	}
	args = append(args, "--name", lv.Name)
	if lv.Type != "" {
		args = append(args, "--type", lv.Type)
	}
	if lv.ThinPool != "" {
		args = append(args, "--thin-pool", lv.ThinPool)
	}
	switch {
	case lv.Extents != "":
		args = append(args, "-l", lv.Extents)
	case lv.Type == "thin":
		args = append(args, "-V", fmt.Sprintf("%dB", lv.Size))
	default:
		args = append(args, "-L", fmt.Sprintf("%dB", lv.Size))
	}
	return append(append(args, lv.Options...), lv.VG)
}

// deactivate deactivates the image's volume groups, so that the image
// is handed back with no device of the helper's still on it. Every
// group is tried; the first failure is returned.
func (img *Image) deactivate() error {
	var first error
	for i := len(img.vgs) - 1; i >= 0; i-- {
		if err := img.lvm("vgchange", "--activate", "n", img.vgs[i]); err != nil && first == nil {
			first = fmt.Errorf("deactivate vg %s: %w", img.vgs[i], err)
		}
	}
	img.vgs = nil
	return first
}
