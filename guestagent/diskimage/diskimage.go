// Package diskimage makes the image's disk on the output disk: its size,
// loop device, partition table, filesystems, their mounts under the
// target and fstab lines, and the devices later hooks are told of.
package diskimage

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibvm/dibvm/elements/blockdevice"
	"github.com/dibvm/dibvm/guestagent/api"
	"github.com/dibvm/dibvm/guestagent/fatstamp"
	"github.com/dibvm/dibvm/guestagent/toolrun"
)

// Image is the disk being built on a loop device over the output disk,
// limited to the image's size so that a GPT's backup header lands at its
// real end.
type Image struct {
	Loop    string // /dev/loopN
	Size    int64
	Parts   []string // partition devices, in layout order
	Volumes []string // logical volume devices, in layout order
	mounts  []string // image filesystems mounted under the target, in order
	pvs     []string // the physical volumes' devices, all LVM may see
	vgs     []string // volume groups made, active until released
	maker   *Maker
}

// devWait bounds the wait for a device node the kernel makes.
const devWait = 10 * time.Second

// devices are the image's devices in the order of the layout's Devices:
// partitions, then logical volumes.
func (img *Image) devices() []string { return append(slices.Clip(img.Parts), img.Volumes...) }

// partition is the device of the layout's partition called name.
func (img *Image) partition(l *api.Layout, name string) string {
	for i, p := range l.Partitions {
		if p.Name == name {
			return img.Parts[i]
		}
	}
	return ""
}

// Maker makes images of a build's layout.
type Maker struct {
	Spec   *api.Spec // its Layout is the disk to make
	Target string    // where the image's filesystems are mounted
	Run    toolrun.Runner
	// Mount and Unmount are mount(2) and umount2(2); tests stand in for
	// them.
	Mount   func(source, target, fstype string, flags uintptr, data string) error
	Unmount func(target string, flags int) error
	// MapperDir is where the device mapper's nodes appear, /dev/mapper.
	MapperDir string
	// StampFAT is fatstamp.Stamp, which tests stand in for.
	StampFAT func(dev string, epoch time.Time) error
}

// NewMaker makes spec's images with the real tools, mounted at target.
func NewMaker(spec *api.Spec, target string) *Maker {
	return &Maker{Spec: spec, Target: target, Run: toolrun.Exec{}, Mount: unix.Mount, Unmount: unix.Unmount, MapperDir: "/dev/mapper",
		StampFAT: fatstamp.Stamp}
}

// Make partitions and formats an image of size bytes on disk and mounts
// it at the target. On failure the image returned, if any, is what is
// to release.
func (m *Maker) Make(disk string, size int64) (*Image, error) {
	l := m.Spec.Layout
	plan, err := blockdevice.Place(l, size)
	if err != nil {
		return nil, err
	}
	out, err := m.Run.Output("losetup", "--find", "--show", "--partscan", "--sizelimit", strconv.FormatInt(size, 10), disk)
	if err != nil {
		return nil, fmt.Errorf("losetup %s: %w", disk, err)
	}
	img := &Image{Loop: strings.TrimSpace(string(out)), Size: size, maker: m}
	if err := m.partition(img.Loop, plan); err != nil {
		return img, err
	}
	for _, e := range plan.Partitions {
		dev := fmt.Sprintf("%sp%d", img.Loop, e.Number)
		if err := waitFor(dev, devWait); err != nil {
			return img, err
		}
		img.Parts = append(img.Parts, dev)
	}
	if l.LVM != nil {
		if err := m.makeLVM(img); err != nil {
			return img, err
		}
	}
	devs := img.devices()
	for i, d := range l.Devices() {
		if d.FS == nil {
			continue
		}
		if err := m.mkfs(devs[i], d.FS); err != nil {
			return img, fmt.Errorf("%s: %w", d.Kind, err)
		}
	}
	return img, m.mountImage(img)
}

// mountImage mounts the image's filesystems under the target, shallowest
// first.
func (m *Maker) mountImage(img *Image) error {
	type mp struct {
		dev string
		fs  *api.Filesystem
	}
	var mps []mp
	devs := img.devices()
	for i, d := range m.Spec.Layout.Devices() {
		if d.FS != nil && d.FS.MountPoint != "" {
			mps = append(mps, mp{devs[i], d.FS})
		}
	}
	sort.Slice(mps, func(i, j int) bool { return mps[i].fs.MountPoint < mps[j].fs.MountPoint })
	for _, mp := range mps {
		dir := filepath.Join(m.Target, mp.fs.MountPoint)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := m.Mount(mp.dev, dir, mp.fs.Type, 0, ""); err != nil {
			return fmt.Errorf("mount %s (%s) at %s: %w", mp.dev, mp.fs.Type, mp.fs.MountPoint, err)
		}
		img.mounts = append(img.mounts, dir)
	}
	return nil
}

// Release trims and unmounts the image's filesystems, deactivates its
// volume groups and frees the loop device.
func (img *Image) Release() error {
	var firstErr error
	for i := len(img.mounts) - 1; i >= 0; i-- {
		img.maker.Run.Output("fstrim", img.mounts[i])
		if err := img.maker.Unmount(img.mounts[i], 0); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("unmount %s: %w", img.mounts[i], err)
		}
	}
	img.mounts = nil
	if err := img.deactivate(); err != nil && firstErr == nil {
		firstErr = err
	}
	if img.Loop != "" {
		img.maker.Run.Output("losetup", "-d", img.Loop)
		img.Loop = ""
	}
	return firstErr
}

func waitFor(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
