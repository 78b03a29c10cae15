package diskimage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Label is a filesystem's label: its own, or DIB's root label for /.
func Label(s *api.Spec, fs *api.Filesystem) string {
	if fs.Label != "" {
		return fs.Label
	}
	if fs.MountPoint == "/" {
		return s.RootLabel
	}
	return ""
}

// Fstab writes the target's /etc/fstab: the image's filesystems, in
// place of what the tree had, as DIB's writefstab does. A tree unpacked
// from a cloud image has that image's fstab, whose root is not this
// image's; kept, systemd finds / twice and boots read-only.
func (m *Maker) Fstab(img *Image) error {
	lines, err := m.fstabLines(img)
	if err != nil {
		return err
	}
	path := filepath.Join(m.Target, "etc", "fstab")
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_TRUNC|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	return err
}

// fstabLines are the image's filesystems as fstab lines, by label when
// they have one, else by UUID.
func (m *Maker) fstabLines(img *Image) ([]string, error) {
	var lines []string
	devs := img.devices()
	for i, d := range m.Spec.Layout.Devices() {
		fs := d.FS
		if fs == nil || fs.MountPoint == "" {
			continue
		}
		src := ""
		if l := Label(m.Spec, fs); l != "" {
			if fs.Type == "vfat" {
				l = strings.ToUpper(l)
			}
			src = "LABEL=" + l
		} else {
			out, err := m.Run.Output("blkid", "-s", "UUID", "-o", "value", devs[i])
			if err != nil {
				return nil, fmt.Errorf("blkid %s: %w", devs[i], err)
			}
			src = "UUID=" + strings.TrimSpace(string(out))
		}
		opts := fs.FstabOptions
		if opts == "" {
			opts = "defaults"
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s 0 %d", src, fs.MountPoint, fs.Type, opts, fs.FsckPassno))
	}
	return lines, nil
}

// Exports are what the later phases are told of the image's devices, in
// the order to set them, as disk-image-create does after block-device.d:
// DIB_BOOT_LABEL for a /boot filesystem, IMAGE_BLOCK_DEVICE the whole
// disk, and IMAGE_BLOCK_DEVICES a bash associative array literal of every
// device by name, image0 being the whole disk. Each is NAME=value.
func Exports(s *api.Spec, img *Image) []string {
	var out []string
	devices := []string{"[image0]=" + img.Loop}
	devs := img.devices()
	for i, d := range s.Layout.Devices() {
		devices = append(devices, fmt.Sprintf("[%s]=%s", d.Name, devs[i]))
		if d.FS != nil && d.FS.MountPoint == "/boot" {
			out = append(out, "DIB_BOOT_LABEL="+Label(s, d.FS))
		}
	}
	return append(out, "IMAGE_BLOCK_DEVICE="+img.Loop, "IMAGE_BLOCK_DEVICES="+strings.Join(devices, " "))
}
