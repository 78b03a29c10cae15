package imagediff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/dibvm/dibvm/host/imageboot"
)

// compareDisks compares two disk images partition by partition: the
// files of an ext2/3/4 partition, the bytes of any other.
func compareDisks(ctx context.Context, typ, a, b, work string) ([]Difference, error) {
	dir, err := os.MkdirTemp(work, "imagediff-*")
	if err != nil {
		return nil, err
	}
	defer removeAll(dir)
	ra, err := asRaw(ctx, typ, a, filepath.Join(dir, "a.raw"))
	if err != nil {
		return nil, err
	}
	rb, err := asRaw(ctx, typ, b, filepath.Join(dir, "b.raw"))
	if err != nil {
		return nil, err
	}
	pa, err := partitions(ra)
	if err != nil {
		return nil, err
	}
	pb, err := partitions(rb)
	if err != nil {
		return nil, err
	}
	var out []Difference
	if !slices.Equal(pa, pb) {
		out = append(out, Difference{"partition table", "the partitions differ in number, place or size"})
	}
	for i := range min(len(pa), len(pb)) {
		name := fmt.Sprintf("p%d", i+1)
		if pa[i] != pb[i] {
			continue
		}
		same, err := sameBytes(ra, rb, pa[i])
		if err != nil || same {
			if err != nil {
				return nil, err
			}
			continue
		}
		if !isExt(ra, pa[i]) || !isExt(rb, pb[i]) {
			out = append(out, Difference{name, "its bytes differ (not an ext2/3/4 filesystem dibvm can list: diffoscope reads more)"})
			continue
		}
		ea, err := extEntries(ctx, ra, pa[i], filepath.Join(dir, name+"-a"))
		if err != nil {
			return nil, err
		}
		eb, err := extEntries(ctx, rb, pb[i], filepath.Join(dir, name+"-b"))
		if err != nil {
			return nil, err
		}
		diffs := compareEntries(name+":", ea, eb)
		if len(diffs) == 0 {
			diffs = []Difference{{name, "its bytes differ, not its files' content and modes (times, owners, or the filesystem's own records)"}}
		}
		out = append(out, diffs...)
	}
	return out, nil
}

// asRaw is the raw disk of an image: name itself, or converted to dst.
// An image is read only as its type's format, and one that names other
// files for qemu-img to open (a backing file) is refused: the image may
// be anyone's, those files the host's (see imageboot.Inspect).
func asRaw(ctx context.Context, typ, name, dst string) (string, error) {
	d, err := imageboot.Inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if typ == "raw" {
		return name, nil
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", d.Format, "-O", "raw", name, dst).CombinedOutput(); err != nil {
		return "", fmt.Errorf("qemu-img convert %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return dst, nil
}

// A partition is a byte range of a disk.
type partition struct{ Start, Size int64 }

// partitions are the disk's partitions, from its GPT or MBR (primary
// partitions); a disk with neither is one partition, the whole.
func partitions(name string) ([]partition, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 34*512)
	if _, err := io.ReadFull(f, head); err != nil {
		info, serr := f.Stat()
		if serr != nil {
			return nil, serr
		}
		return []partition{{0, info.Size()}}, nil
	}
	if head[510] != 0x55 || head[511] != 0xaa {
		info, err := f.Stat()
		if err != nil {
			return nil, err
		}
		return []partition{{0, info.Size()}}, nil
	}
	if bytes.Equal(head[512:520], []byte("EFI PART")) {
		return gptPartitions(f, head[512:1024])
	}
	var out []partition
	for i := range 4 {
		e := head[446+16*i:]
		if e[4] == 0 {
			continue
		}
		out = append(out, partition{int64(binary.LittleEndian.Uint32(e[8:])) * 512, int64(binary.LittleEndian.Uint32(e[12:])) * 512})
	}
	return out, nil
}

// maxGPTEntries bounds the entries read: GPT's usual 128, and some.
const maxGPTEntries = 1024

func gptPartitions(f *os.File, hdr []byte) ([]partition, error) {
	lba := int64(binary.LittleEndian.Uint64(hdr[72:]))
	count := binary.LittleEndian.Uint32(hdr[80:])
	size := int64(binary.LittleEndian.Uint32(hdr[84:]))
	if count > maxGPTEntries || size < 128 || size > 4096 {
		return nil, fmt.Errorf("%s: a GPT of %d entries of %d bytes", f.Name(), count, size)
	}
	table := make([]byte, int64(count)*size)
	if _, err := f.ReadAt(table, lba*512); err != nil {
		return nil, fmt.Errorf("%s: the GPT: %w", f.Name(), err)
	}
	var out []partition
	for i := range int64(count) {
		e := table[i*size:]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := int64(binary.LittleEndian.Uint64(e[32:])), int64(binary.LittleEndian.Uint64(e[40:]))
		out = append(out, partition{first * 512, (last - first + 1) * 512})
	}
	return out, nil
}

func sameBytes(a, b string, p partition) (bool, error) {
	ha, err := rangeSum(a, p)
	if err != nil {
		return false, err
	}
	hb, err := rangeSum(b, p)
	return ha == hb, err
}

func rangeSum(name string, p partition) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, p.Start, p.Size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// isExt says whether p holds an ext2/3/4 filesystem: its superblock's
// magic number.
func isExt(name string, p partition) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 2)
	_, err = f.ReadAt(magic, p.Start+1024+56)
	return err == nil && binary.LittleEndian.Uint16(magic) == 0xef53
}
