package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// diskSize is a flag for a disk's size in bytes: a number with an
// optional K, M, G or T suffix (powers of 1024, as qemu-img reads them),
// optionally followed by "iB" or "B".
type diskSize int64

// minDisk is the smallest disk a build can format and use.
const minDisk = 512 << 20

func (d *diskSize) String() string {
	if *d == 0 {
		return ""
	}
	return fmt.Sprintf("%dM", int64(*d)>>20)
}

func (d *diskSize) Type() string { return "size" }

func (d *diskSize) Set(s string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	shift := 0
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			shift, t = 10*(i+1), t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || !(n > 0) || math.IsInf(n, 0) {
		return fmt.Errorf("want a size such as 40G or 512M")
	}
	bytes := n * float64(int64(1)<<shift)
	if bytes > 1<<50 {
		return fmt.Errorf("%s is more than a disk dibvm will make", s)
	}
	if bytes < minDisk {
		return fmt.Errorf("%s is less than the %d MiB a build needs", s, minDisk>>20)
	}
	*d = diskSize(int64(bytes) &^ (1<<20 - 1)) // whole MiB
	return nil
}

// defaultScratch is the scratch and output disks' size when
// --scratch-size is not given: room for an ordinary image's tree, work
// files and outputs, and for a fixed --image-size.
func defaultScratch(imageSizeGB float64) int64 {
	size := int64(20 << 30)
	if want := int64(2*imageSizeGB*1e9) + 4<<30; want > size {
		size = want &^ (1<<20 - 1)
	}
	return size
}
