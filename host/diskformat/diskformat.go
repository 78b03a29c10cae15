// Package diskformat is the one table of the disk image types dibvm
// writes and the name qemu-img gives each. The build converts its raw
// disk to them, create offers to boot what it wrote, and boot reads an
// image named as dibvm names its outputs as that format and no other,
// guessing nothing from bytes the build's guest wrote.
package diskformat

import (
	"path/filepath"
	"strings"
)

// A Format is one disk image type.
type Format struct {
	Type    string // as -t names it; also the output file's extension
	QemuImg string // as qemu-img's -f and -O name it
}

// All are the disk image types, in the order messages list them.
var All = []Format{
	{"raw", "raw"},
	{"qcow2", "qcow2"},
	{"vhd", "vpc"},
	{"vhdx", "vhdx"},
	{"vmdk", "vmdk"},
}

// QemuImg is qemu-img's name for the output type typ, and whether typ
// is a disk image type at all.
func QemuImg(typ string) (string, bool) {
	for _, f := range All {
		if f.Type == typ {
			return f.QemuImg, true
		}
	}
	return "", false
}

// WantsDisk says whether any of types is a disk image type: whether a
// build of them lays out a disk, and its guest writes a raw image. It is
// here, with the table, for both the plan and the check of what the
// guest wrote.
func WantsDisk(types []string) bool {
	for _, t := range types {
		if _, ok := QemuImg(t); ok {
			return true
		}
	}
	return false
}

// OfFile is qemu-img's name for the format of the file at path, by its
// extension in any case, and whether the extension is a disk image
// type's.
func OfFile(path string) (string, bool) {
	ext, ok := strings.CutPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if !ok {
		return "", false
	}
	return QemuImg(ext)
}

// QemuImgNames are qemu-img's names of All, in order.
func QemuImgNames() []string {
	out := make([]string, len(All))
	for i, f := range All {
		out[i] = f.QemuImg
	}
	return out
}

// Types are the disk image types as -t names them, in All's order.
func Types() []string {
	var out []string
	for _, f := range All {
		out = append(out, f.Type)
	}
	return out
}
