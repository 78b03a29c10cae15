// Package imagediff says where two outputs of a build differ, by path,
// with the host's own tools and without root: a tar's entries, and the
// files of the ext2/3/4 filesystems on a disk image's partitions (read
// with e2fsprogs' debugfs, converted to raw first with qemu-img). What
// it cannot read it names as a whole: a partition, or the file.
package imagediff

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
