package outputs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"regexp"
)

// Pinned are what a reproducible build's disk images carry in place of
// what qemu-img makes up: the time it would stamp, and the seed the
// identifiers it would draw at random derive from.
type Pinned struct {
	Epoch int64  // SOURCE_DATE_EPOCH
	Seed  string // the build's seed (see plan.Reproducible)
}

// id is a 16-byte identifier derived from the seed, for purpose.
func (p *Pinned) id(purpose string) []byte {
	sum := sha256.Sum256([]byte(p.Seed + "\x00disk image " + purpose))
	b := sum[:16]
	b[7] = b[7]&0x0f | 0x80 // RFC 9562 version 8, as GUIDs store it
	b[8] = b[8]&0x3f | 0x80
	return b
}

// pinFormat replaces, in the disk image f that qemu-img wrote as format,
// the fields that differ from one conversion of the same raw image to
// the next (tried with QEMU 7.2): name is the output's file name, which
// a vmdk names itself by. qcow2 and raw have none.
func pinFormat(f *os.File, format, name string, p *Pinned) error {
	var err error
	switch format {
	case "vpc":
		err = pinVHD(f, p)
	case "vhdx":
		err = pinVHDX(f, p)
	case "vmdk":
		err = pinVMDK(f, name, p)
	}
	if err != nil {
		return fmt.Errorf("%s image: %w", format, err)
	}
	return nil
}

// pinVHD sets the footer's time stamp and unique ID, in the copy at the
// file's end and, in a dynamic image, the one at its start, and sums it
// again.
func pinVHD(f *os.File, p *Pinned) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	// The footer's time counts from 2000-01-01 00:00 UTC.
	stamp := max(p.Epoch-946684800, 0)
	for _, off := range []int64{0, info.Size() - 512} {
		footer := make([]byte, 512)
		if _, err := f.ReadAt(footer, off); err != nil {
			return err
		}
		if !bytes.HasPrefix(footer, []byte("conectix")) {
			continue // a fixed image has no copy at its start
		}
		binary.BigEndian.PutUint32(footer[24:], uint32(stamp))
		copy(footer[68:84], p.id("vhd"))
		binary.BigEndian.PutUint32(footer[64:], 0)
		var sum uint32
		for _, b := range footer {
			sum += uint32(b)
		}
		binary.BigEndian.PutUint32(footer[64:], ^sum)
		if _, err := f.WriteAt(footer, off); err != nil {
			return err
		}
	}
	return nil
}

// vhdx's metadata item of the disk's SCSI page 83 identifier.
var page83GUID = []byte{0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45, 0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46}

// pinVHDX sets both headers' write GUIDs and sequence numbers (keeping
// which is current), empties the log, which the headers say holds
// nothing to replay, names dibvm as the creator, and sets the page 83
// identifier.
func pinVHDX(f *os.File, p *Pinned) error {
	var heads [2][]byte
	for i, off := range []int64{64 << 10, 128 << 10} {
		heads[i] = make([]byte, 4<<10)
		if _, err := f.ReadAt(heads[i], off); err != nil {
			return err
		}
		if !bytes.HasPrefix(heads[i], []byte("head")) {
			return errors.New("no header where qemu-img writes it")
		}
		if !bytes.Equal(heads[i][48:64], make([]byte, 16)) {
			return errors.New("its log has entries to replay")
		}
	}
	newer := 0
	if binary.LittleEndian.Uint64(heads[1][8:]) > binary.LittleEndian.Uint64(heads[0][8:]) {
		newer = 1
	}
	logOff := int64(binary.LittleEndian.Uint64(heads[0][72:]))
	logLen := int64(binary.LittleEndian.Uint32(heads[0][68:]))
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for i, off := range []int64{64 << 10, 128 << 10} {
		h := heads[i]
		seq := uint64(1)
		if i == newer {
			seq = 2
		}
		binary.LittleEndian.PutUint64(h[8:], seq)
		copy(h[16:32], p.id("vhdx file write"))
		copy(h[32:48], p.id("vhdx data write"))
		binary.LittleEndian.PutUint32(h[4:], 0)
		binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h, castagnoli))
		if _, err := f.WriteAt(h, off); err != nil {
			return err
		}
	}
	if _, err := f.WriteAt(make([]byte, logLen), logOff); err != nil {
		return err
	}
	// The creator, after the file's signature, is qemu-img's version
	// (of the host's build): the same name whoever converted it.
	creator := make([]byte, 512)
	for i, r := range "dibvm" {
		creator[2*i] = byte(r) // UTF-16LE
	}
	if _, err := f.WriteAt(creator, 8); err != nil {
		return err
	}
	return pinPage83(f, p)
}

// pinPage83 finds the metadata region in the region table and the page
// 83 item in its table, and sets the identifier.
func pinPage83(f *os.File, p *Pinned) error {
	regions := make([]byte, 64<<10)
	if _, err := f.ReadAt(regions, 192<<10); err != nil {
		return err
	}
	metadataGUID := []byte{0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e}
	count := int(binary.LittleEndian.Uint32(regions[8:]))
	for i := 0; i < count && 16+32*(i+1) <= len(regions); i++ {
		e := regions[16+32*i:]
		if !bytes.Equal(e[:16], metadataGUID) {
			continue
		}
		base := int64(binary.LittleEndian.Uint64(e[16:]))
		table := make([]byte, 64<<10)
		if _, err := f.ReadAt(table, base); err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint16(table[10:]))
		for j := 0; j < n && 32+32*(j+1) <= len(table); j++ {
			item := table[32+32*j:]
			if bytes.Equal(item[:16], page83GUID) {
				_, err := f.WriteAt(p.id("vhdx page 83"), base+int64(binary.LittleEndian.Uint32(item[16:])))
				return err
			}
		}
	}
	return errors.New("no page 83 identifier in its metadata")
}

var (
	vmdkCID    = regexp.MustCompile(`(?m)^CID=[0-9a-f]{1,8}$`)
	vmdkExtent = regexp.MustCompile(`(?m)^(RW \d+ SPARSE )"[^"\n]*"$`)
)

// pinVMDK sets the embedded descriptor's content ID, and its extent's
// file name to the output's: qemu-img names the file it wrote, a
// temporary one.
func pinVMDK(f *os.File, name string, p *Pinned) error {
	head := make([]byte, 512)
	if _, err := f.ReadAt(head, 0); err != nil {
		return err
	}
	if !bytes.HasPrefix(head, []byte("KDMV")) {
		return errors.New("not a monolithic sparse vmdk")
	}
	off := int64(binary.LittleEndian.Uint64(head[28:])) * 512
	size := int64(binary.LittleEndian.Uint64(head[36:])) * 512
	desc := make([]byte, size)
	if _, err := f.ReadAt(desc, off); err != nil && err != io.EOF {
		return err
	}
	// The descriptor is a C string. qemu-img may rewrite it shorter in
	// place (its content ID is written with %x, so one time in sixteen a
	// digit shorter), leaving bytes of the longer one after the NUL.
	text, _, _ := bytes.Cut(desc, []byte{0})
	text = vmdkCID.ReplaceAll(text, fmt.Appendf(nil, "CID=%08x", binary.BigEndian.Uint32(p.id("vmdk"))))
	text = vmdkExtent.ReplaceAllFunc(text, func(line []byte) []byte {
		return fmt.Appendf(nil, "%s\"%s\"", vmdkExtent.FindSubmatch(line)[1], name)
	})
	if int64(len(text)) > size {
		return errors.New("its descriptor has no room for the output's name")
	}
	out := make([]byte, size)
	copy(out, text)
	_, err := f.WriteAt(out, off)
	return err
}
