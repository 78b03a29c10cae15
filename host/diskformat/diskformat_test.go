package diskformat

import (
	"slices"
	"testing"
)

func TestQemuImg(t *testing.T) {
	for _, tc := range []struct {
		typ, want string
		ok        bool
	}{
		{"raw", "raw", true},
		{"qcow2", "qcow2", true},
		{"vhd", "vpc", true},
		{"vhdx", "vhdx", true},
		{"vmdk", "vmdk", true},
		{"vpc", "", false}, // qemu-img's name, not an output type
		{"tar", "", false},
		{"QCOW2", "", false},
		{"", "", false},
	} {
		got, ok := QemuImg(tc.typ)
		if got != tc.want || ok != tc.ok {
			t.Errorf("QemuImg(%q) = %q, %v; want %q, %v", tc.typ, got, ok, tc.want, tc.ok)
		}
	}
}

func TestOfFile(t *testing.T) {
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"/tmp/out/image.qcow2", "qcow2", true},
		{"image.raw", "raw", true},
		{"image.vhd", "vpc", true},
		{"IMAGE.VHDX", "vhdx", true},
		{"dir.qcow2/image.vmdk", "vmdk", true},
		{"image.img", "", false},
		{"image.qcow2.tar", "", false},
		{"qcow2", "", false},
		{"image.", "", false},
		{"", "", false},
	} {
		got, ok := OfFile(tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("OfFile(%q) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

// Boot's refusal lists the formats in this order.
func TestQemuImgNames(t *testing.T) {
	if got, want := QemuImgNames(), []string{"raw", "qcow2", "vpc", "vhdx", "vmdk"}; !slices.Equal(got, want) {
		t.Errorf("QemuImgNames() = %q; want %q", got, want)
	}
}
