package imageboot

import (
	"bytes"
	"encoding/binary"
)

// espGUID is the EFI system partition's type GUID,
// C12A7328-F81F-11D2-BA4B-00A0C93EC93B, as GPT stores it (the first
// three fields little-endian).
var espGUID = []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

// hasESP says whether the disk that head starts has an EFI system
// partition: an MBR partition of type 0xEF, or a GPT partition of the
// ESP's type among the entries within head. Only 512-byte sectors, the
// ones DIB's images have.
func hasESP(head []byte) bool {
	if len(head) < 1024 || head[510] != 0x55 || head[511] != 0xaa {
		return false
	}
	gpt := false
	for i := range 4 {
		switch head[446+16*i+4] {
		case 0xef:
			return true
		case 0xee:
			gpt = true
		}
	}
	if !gpt || !bytes.Equal(head[512:520], []byte("EFI PART")) {
		return false
	}
	hdr := head[512:]
	lba := binary.LittleEndian.Uint64(hdr[72:])
	count := binary.LittleEndian.Uint32(hdr[80:])
	size := binary.LittleEndian.Uint32(hdr[84:])
	if size < 128 || lba > uint64(len(head))/512 {
		return false
	}
	for i := range uint64(count) {
		off := lba*512 + i*uint64(size)
		if off+16 > uint64(len(head)) {
			break
		}
		if bytes.Equal(head[off:off+16], espGUID) {
			return true
		}
	}
	return false
}
