// Package fatstamp pins the times of every entry of a FAT filesystem.
// Linux stamps a FAT entry's creation time (to the hundredth of a
// second) and access date with the clock when it writes the entry, and
// no mount option or utimensat(2) sets them: a FAT filesystem the kernel
// populated differs from the next in those bytes alone. Stamp rewrites
// them, once the filesystem is unmounted, to the entry's modification
// time, clamped to an epoch as that is.
package fatstamp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// volume is the geometry of a FAT filesystem, from its boot sector.
type volume struct {
	f           *os.File
	sectorSize  int64
	clusterSize int64
	fatStart    int64 // byte offset of the first FAT
	rootStart   int64 // byte offset of FAT12/16's fixed root directory
	rootSize    int64 // its length; 0 on FAT32
	dataStart   int64 // byte offset of cluster 2
	bits        int   // 12, 16 or 32
	rootCluster uint32
}

// Stamp sets, in the FAT filesystem on dev, every entry's creation time
// and access date to its modification time, and any modification time
// later than epoch to epoch.
func Stamp(dev string, epoch time.Time) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	v, err := readVolume(f)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	limit := dosTime(epoch.UTC())
	if v.bits == 32 {
		err = v.stampChain(v.rootCluster, limit, 0)
	} else {
		err = v.stampRegion(v.rootStart, v.rootSize, limit, 0)
	}
	if err != nil && !errors.Is(err, errEnd) {
		return fmt.Errorf("%s: %w", dev, err)
	}
	return f.Sync()
}

func readVolume(f *os.File) (*volume, error) {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, 0); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	v := &volume{f: f, sectorSize: int64(le.Uint16(bs[11:]))}
	spc := int64(bs[13])
	reserved, fats, rootEntries := int64(le.Uint16(bs[14:])), int64(bs[16]), int64(le.Uint16(bs[17:]))
	total, fatSize := int64(le.Uint16(bs[19:])), int64(le.Uint16(bs[22:]))
	if total == 0 {
		total = int64(le.Uint32(bs[32:]))
	}
	if fatSize == 0 {
		fatSize = int64(le.Uint32(bs[36:]))
		v.rootCluster = le.Uint32(bs[44:])
	}
	if v.sectorSize == 0 || spc == 0 || fats == 0 || bs[510] != 0x55 || bs[511] != 0xaa {
		return nil, errors.New("not a FAT filesystem")
	}
	rootSectors := (rootEntries*32 + v.sectorSize - 1) / v.sectorSize
	v.clusterSize = spc * v.sectorSize
	v.fatStart = reserved * v.sectorSize
	v.rootStart = (reserved + fats*fatSize) * v.sectorSize
	v.rootSize = rootSectors * v.sectorSize
	v.dataStart = v.rootStart + v.rootSize
	switch clusters := (total - reserved - fats*fatSize - rootSectors) / spc; {
	case clusters < 4085:
		v.bits = 12
	case clusters < 65525:
		v.bits = 16
	default:
		v.bits = 32
	}
	return v, nil
}

// next is the cluster after c in its chain, and whether there is one.
func (v *volume) next(c uint32) (uint32, bool, error) {
	buf := make([]byte, 4)
	le := binary.LittleEndian
	var n uint32
	switch v.bits {
	case 12:
		if _, err := v.f.ReadAt(buf[:2], v.fatStart+int64(c+c/2)); err != nil {
			return 0, false, err
		}
		n = uint32(le.Uint16(buf))
		if c%2 == 1 {
			n >>= 4
		}
		n &= 0xfff
		return n, n >= 2 && n < 0xff8, nil
	case 16:
		if _, err := v.f.ReadAt(buf[:2], v.fatStart+int64(c)*2); err != nil {
			return 0, false, err
		}
		n = uint32(le.Uint16(buf))
		return n, n >= 2 && n < 0xfff8, nil
	}
	if _, err := v.f.ReadAt(buf, v.fatStart+int64(c)*4); err != nil {
		return 0, false, err
	}
	n = le.Uint32(buf) & 0x0fffffff
	return n, n >= 2 && n < 0x0ffffff8, nil
}

// maxDepth bounds the walk: a corrupt directory that holds itself must
// not loop.
const maxDepth = 64

// stampChain stamps the directory in the cluster chain from first.
func (v *volume) stampChain(first uint32, limit uint32, depth int) error {
	if depth > maxDepth {
		return errors.New("directories nested too deep")
	}
	for c, seen := first, 0; ; seen++ {
		if seen > 1<<20 {
			return errors.New("a directory's cluster chain loops")
		}
		if err := v.stampRegion(v.dataStart+int64(c-2)*v.clusterSize, v.clusterSize, limit, depth); err != nil {
			if errors.Is(err, errEnd) {
				return nil
			}
			return err
		}
		n, ok, err := v.next(c)
		if err != nil || !ok {
			return err
		}
		c = n
	}
}

// errEnd is the end of a directory: an entry whose name starts with 0.
var errEnd = errors.New("end of directory")

// stampRegion stamps the entries of a directory's run of bytes, and
// the directories they name, in turn.
func (v *volume) stampRegion(off, size int64, limit uint32, depth int) error {
	buf := make([]byte, size)
	if _, err := v.f.ReadAt(buf, off); err != nil && err != io.EOF {
		return err
	}
	var subdirs []uint32
	end := false
	for i := 0; i+32 <= len(buf); i += 32 {
		e := buf[i : i+32]
		if e[0] == 0 {
			end = true
			break
		}
		if e[0] == 0xe5 || e[11]&0x3f == 0x0f { // deleted, or a long name's part
			continue
		}
		stampEntry(e, limit)
		dot := e[0] == '.' && (e[1] == ' ' || e[1] == '.')
		if e[11]&0x10 != 0 && !dot {
			le := binary.LittleEndian
			subdirs = append(subdirs, uint32(le.Uint16(e[20:]))<<16|uint32(le.Uint16(e[26:])))
		}
	}
	if _, err := v.f.WriteAt(buf, off); err != nil {
		return err
	}
	for _, c := range subdirs {
		if c >= 2 {
			if err := v.stampChain(c, limit, depth+1); err != nil {
				return err
			}
		}
	}
	if end {
		return errEnd
	}
	return nil
}

// stampEntry sets a directory entry's times: the modification time,
// clamped to limit, for all of them.
func stampEntry(e []byte, limit uint32) {
	le := binary.LittleEndian
	mod := uint32(le.Uint16(e[24:]))<<16 | uint32(le.Uint16(e[22:]))
	mod = min(mod, limit)
	le.PutUint16(e[22:], uint16(mod))     // modification time
	le.PutUint16(e[24:], uint16(mod>>16)) // and date
	e[13] = 0                             // creation time's hundredths
	le.PutUint16(e[14:], uint16(mod))     // creation time
	le.PutUint16(e[16:], uint16(mod>>16)) // and date
	le.PutUint16(e[18:], uint16(mod>>16)) // access date
}

// dosTime is t as FAT stores it, date in the high half so that later
// times compare greater: the earliest it can hold is 1980-01-01.
func dosTime(t time.Time) uint32 {
	if t.Year() < 1980 {
		return (1<<5 | 1) << 16 // 1980-01-01 00:00:00
	}
	date := uint32(t.Year()-1980)<<9 | uint32(t.Month())<<5 | uint32(t.Day())
	clock := uint32(t.Hour())<<11 | uint32(t.Minute())<<5 | uint32(t.Second()/2)
	return date<<16 | clock
}
