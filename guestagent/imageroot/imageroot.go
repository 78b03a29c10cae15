// Package imageroot finds and mounts the filesystems of an existing disk
// image in the helper VM: its root, its /boot and its EFI system
// partition, chosen as DIB's extract-image chooses them in a cloud
// image, so that an image DIB can build from is one dibvm can open.
//
// The helper sees the image as a virtio disk whose partitions the kernel
// has already found: no loop device or device-mapper table is needed, as
// kpartx is for extract-image on a host.
package imageroot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Partition is one filesystem of the image, as blkid probes it.
type Partition struct {
	Dev      string // the device, /dev/vdb3
	Number   int    // its partition number; 0 for a disk without a table
	FSType   string // blkid's TYPE: ext4, xfs, vfat, swap, LVM2_member…
	Label    string
	PartType string // the table's type: a GPT type GUID, or an MBR type as 0x83
}

func (p Partition) String() string {
	s := p.Dev + " (" + p.FSType
	if p.Label != "" {
		s += ", label " + p.Label
	}
	return s + ")"
}

// Partition types extract-image looks for.
const (
	typeESP       = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
	typeLinuxBoot = "bc13c2ff-59e6-4262-a352-b275fd6f7172" // XBOOTLDR
	typeMBRESP    = "0xef"
)

// Layout is where an image's filesystems go: Boot and EFI may be nil.
type Layout struct {
	Root, Boot, EFI *Partition
}

// notMountable are what blkid finds that hold no files to mount.
var notMountable = []string{"swap", "LVM2_member", "crypto_LUKS", "linux_raid_member", "BitLocker"}

// Choose picks the root, /boot and ESP among parts as extract-image
// does: the only filesystem is the root; otherwise, from the last
// partition to the first, the first ESP by type is the ESP, the first
// partition typed or labelled boot is /boot, and the first other
// filesystem is the root (a lone /boot is the root). Partitions without
// a filesystem (a BIOS boot partition) do not count, nor do swap and
// volumes of LVM, RAID or LUKS, which a root on them would need opened
// first: an image whose root is there is refused, naming them.
func Choose(parts []Partition) (Layout, error) {
	var fs, held []Partition
	for _, p := range parts {
		switch {
		case p.FSType == "":
		case slices.Contains(notMountable, p.FSType):
			if p.FSType != "swap" {
				held = append(held, p)
			}
		default:
			fs = append(fs, p)
		}
	}
	slices.SortStableFunc(fs, func(a, b Partition) int { return b.Number - a.Number })
	var l Layout
	if len(fs) == 1 && len(held) == 0 {
		l.Root = &fs[0]
		return l, nil
	}
	for i := range fs {
		p := &fs[i]
		switch {
		case l.EFI == nil && (p.PartType == typeESP || p.PartType == typeMBRESP):
			l.EFI = p
		case l.Boot == nil && (p.PartType == typeLinuxBoot || p.Label == "boot"):
			l.Boot = p
		case l.Root == nil:
			l.Root = p
		}
	}
	// A lone /boot is the root, unless a volume that holds no files of
	// its own to mount (LVM, RAID, LUKS) is where the root must be, as
	// in RHEL's own installs.
	if l.Root == nil && len(held) == 0 {
		l.Root, l.Boot = l.Boot, nil
	}
	if l.Root == nil {
		if len(held) > 0 {
			return l, fmt.Errorf("no filesystem to mount as the root: the image's root must be on %s, which dibvm does not open yet", describe(held))
		}
		return l, errors.New("the image has no filesystem to mount as its root")
	}
	return l, nil
}

func describe(parts []Partition) string {
	var s []string
	for _, p := range parts {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// Probe lists the filesystems of disk (/dev/vdb): each partition the
// kernel found, or the whole disk when it has no partition table.
func Probe(disk string) ([]Partition, error) {
	name := filepath.Base(disk)
	entries, err := os.ReadDir(filepath.Join("/sys/block", name))
	if err != nil {
		return nil, err
	}
	var parts []Partition
	for _, e := range entries {
		n, err := os.ReadFile(filepath.Join("/sys/block", name, e.Name(), "partition"))
		if err != nil {
			continue
		}
		num, _ := strconv.Atoi(strings.TrimSpace(string(n)))
		p, err := probe("/dev/"+e.Name(), num)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		p, err := probe(disk, 0)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// probe asks blkid what dev holds, reading the device itself (-p), not
// a cache.
func probe(dev string, num int) (Partition, error) {
	p := Partition{Dev: dev, Number: num}
	out, err := exec.Command("blkid", "-p", "-o", "export", dev).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return p, nil // nothing blkid knows: no filesystem
	}
	if err != nil {
		return p, fmt.Errorf("blkid %s: %w", dev, err)
	}
	v := parseExport(out)
	p.FSType, p.Label, p.PartType = v["TYPE"], v["LABEL"], strings.ToLower(v["PART_ENTRY_TYPE"])
	return p, nil
}

// parseExport reads blkid's -o export lines, KEY=VALUE.
func parseExport(out []byte) map[string]string {
	v := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, val, ok := strings.Cut(sc.Text(), "="); ok {
			v[k] = strings.TrimFunc(val, unicode.IsSpace)
		}
	}
	return v
}
