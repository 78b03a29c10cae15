// Package imagediff says where two outputs of a build differ, by path,
// with the host's own tools and without root: a tar's entries, and the
// files of the ext2/3/4 filesystems on a disk image's partitions (read
// with e2fsprogs' debugfs, converted to raw first with qemu-img). What
// it cannot read it names as a whole: a partition, or the file.
package imagediff

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dibvm/dibvm/host/imageboot"
)

// A Difference is one path where two outputs differ, and how.
type Difference struct {
	// Path is the file's path in the image, after the partition it is
	// on ("p2:/etc/hostname") where the output is a disk; a partition
	// alone ("p1") where its filesystem could not be read.
	Path string
	What string
}

func (d Difference) String() string { return d.Path + ": " + d.What }

// Compare lists where b, an output of the given type (a dibvm -t type),
// differs from a, in order of path. work is a directory for the files
// it unpacks, which it removes.
func Compare(ctx context.Context, typ, a, b, work string) ([]Difference, error) {
	switch typ {
	case "tar":
		return compareTars(a, b, false)
	case "tgz", "tar.gz":
		return compareTars(a, b, true)
	case "raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "qed":
		return compareDisks(ctx, typ, a, b, work)
	}
	return []Difference{{Path: filepath.Base(b), What: "differs (dibvm lists the files of tar and disk images only; diffoscope reads more)"}}, nil
}

// entry is what is compared of a file: its kind, mode, owner, link and
// content's digest. Times are left out: a reproducible build clamps
// them, and where they differ the content does too.
type entry struct {
	kind    byte
	mode    fs.FileMode
	owner   string // "" where it cannot be read (a filesystem copied out as the user)
	link    string
	content string
}

func compareTars(a, b string, gz bool) ([]Difference, error) {
	ea, err := tarEntries(a, gz)
	if err != nil {
		return nil, err
	}
	eb, err := tarEntries(b, gz)
	if err != nil {
		return nil, err
	}
	return compareEntries("", ea, eb), nil
}

func tarEntries(name string, gz bool) (map[string]entry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r = zr
	}
	out := map[string]entry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		out[strings.TrimSuffix(p, "/")] = entry{kind: h.Typeflag, mode: h.FileInfo().Mode(), owner: fmt.Sprintf("%d:%d", h.Uid, h.Gid), link: h.Linkname, content: hex.EncodeToString(sum.Sum(nil))}
	}
}

// compareEntries lists the paths of a and b that differ, each after
// prefix.
func compareEntries(prefix string, a, b map[string]entry) []Difference {
	var out []Difference
	for _, p := range sortedKeys(a, b) {
		ea, ina := a[p]
		eb, inb := b[p]
		switch {
		case !inb:
			out = append(out, Difference{prefix + p, "only in the first"})
		case !ina:
			out = append(out, Difference{prefix + p, "only in the second"})
		case ea != eb:
			out = append(out, Difference{prefix + p, describe(ea, eb)})
		}
	}
	return out
}

// describe says what of two entries differs.
func describe(a, b entry) string {
	var what []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"kind", a.kind == b.kind}, {"mode", a.mode == b.mode}, {"owner", a.owner == b.owner},
		{"link target", a.link == b.link}, {"content", a.content == b.content},
	} {
		if !f.same {
			what = append(what, f.name)
		}
	}
	return strings.Join(what, ", ") + " differs"
}

func sortedKeys(maps ...map[string]entry) []string {
	var keys []string
	for _, m := range maps {
		for k := range m {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

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

// extEntries are the files of the ext filesystem on p, read with
// debugfs: each directory listed by inode number (ls -p), level by
// level, and each file's content dumped to a file named for its inode
// number. No host path is made of a name in the image, which may be
// anyone's: debugfs's rdump would follow a link the image holds.
func extEntries(ctx context.Context, disk string, p partition, dst string) (map[string]entry, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return nil, err
	}
	dev := fmt.Sprintf("%s?offset=%d", disk, p.Start)
	out := map[string]entry{}
	type dirent struct {
		ino  uint64
		path string
	}
	level := []dirent{{2, ""}} // ext's root directory is inode 2
	var files, links []dirent
	for depth := 0; len(level) > 0; depth++ {
		if depth > maxDepth || len(out) > maxEntries {
			return nil, fmt.Errorf("%s: more than %d levels or %d files", dev, maxDepth, maxEntries)
		}
		var cmds []string
		for _, d := range level {
			cmds = append(cmds, fmt.Sprintf("ls -p <%d>", d.ino))
		}
		listings, err := debugfs(ctx, dev, dst, cmds)
		if err != nil {
			return nil, err
		}
		var next []dirent
		for i, d := range level {
			for _, line := range strings.Split(listings[i], "\n") {
				f, ok := parseLsLine(line)
				if !ok || f.name == "." || f.name == ".." || (d.path == "" && f.name == "lost+found") {
					continue
				}
				e := dirent{f.ino, d.path + "/" + f.name}
				out[e.path] = entry{kind: kind(f.mode), mode: f.mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), owner: f.owner}
				switch {
				case f.mode.IsDir():
					next = append(next, e)
				case f.mode.IsRegular():
					files = append(files, e)
				case f.mode&fs.ModeSymlink != 0:
					links = append(links, e)
				}
			}
		}
		level = next
	}
	var cmds []string
	for _, f := range files {
		cmds = append(cmds, fmt.Sprintf("dump_inode <%d> %s", f.ino, filepath.Join(dst, strconv.FormatUint(f.ino, 10))))
	}
	for _, l := range links {
		cmds = append(cmds, fmt.Sprintf("stat <%d>", l.ino))
	}
	results, err := debugfs(ctx, dev, dst, cmds)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		e := out[f.path]
		if e.content, err = fileSum(filepath.Join(dst, strconv.FormatUint(f.ino, 10))); err != nil {
			return nil, err
		}
		out[f.path] = e
	}
	for i, l := range links {
		e := out[l.path]
		if m := fastLink.FindStringSubmatch(results[len(files)+i]); m != nil {
			e.link = m[1]
		} else {
			e.link = "(a long link: not read)"
		}
		out[l.path] = e
	}
	return out, nil
}

// Bounds on a filesystem listed: an image's may be anyone's.
const (
	maxDepth   = 256
	maxEntries = 2_000_000
)

var fastLink = regexp.MustCompile(`Fast link dest: "(.*)"`)

// lsEntry is one line of debugfs's ls -p: /INODE/MODE/UID/GID/NAME/SIZE/.
type lsEntry struct {
	ino   uint64
	mode  fs.FileMode
	owner string
	name  string
}

func parseLsLine(line string) (lsEntry, bool) {
	if !strings.HasPrefix(line, "/") || !strings.HasSuffix(line, "/") {
		return lsEntry{}, false
	}
	f := strings.Split(line[1:len(line)-1], "/")
	if len(f) < 6 {
		return lsEntry{}, false
	}
	ino, err1 := strconv.ParseUint(f[0], 10, 64)
	mode, err2 := strconv.ParseUint(f[1], 8, 32)
	if err1 != nil || err2 != nil {
		return lsEntry{}, false
	}
	return lsEntry{ino: ino, mode: unixMode(uint32(mode)), owner: f[2] + ":" + f[3], name: strings.Join(f[4:len(f)-1], "/")}, true
}

// unixMode is a Unix st_mode as an fs.FileMode.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o100000:
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// debugfs runs cmds, one a line, on dev, and returns each one's output:
// debugfs echoes each command it reads from a file before its output.
func debugfs(ctx context.Context, dev, dir string, cmds []string) ([]string, error) {
	out := make([]string, len(cmds))
	if len(cmds) == 0 {
		return out, nil
	}
	script := filepath.Join(dir, "debugfs.cmds")
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(script)
	cmd := exec.CommandContext(ctx, "debugfs", "-f", script, dev)
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs on %s: %v", dev, err)
	}
	i := -1
	for _, line := range strings.Split(string(b), "\n") {
		if i+1 < len(cmds) && line == "debugfs: "+cmds[i+1] {
			i++
			continue
		}
		if i >= 0 {
			out[i] += line + "\n"
		}
	}
	if i != len(cmds)-1 {
		return nil, fmt.Errorf("debugfs on %s answered %d of %d commands", dev, i+1, len(cmds))
	}
	return out, nil
}

func kind(m fs.FileMode) byte {
	switch {
	case m.IsDir():
		return 'd'
	case m&fs.ModeSymlink != 0:
		return 'l'
	case m.IsRegular():
		return 'f'
	}
	return 'o'
}

func fileSum(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// removeAll removes dir, whose copied-out directories may have no write
// permission for their owner.
func removeAll(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
