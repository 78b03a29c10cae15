package api

import "testing"

func TestCheckEmittedName(t *testing.T) {
	for _, name := range []string{"img.vmlinuz", "img.initrd", "img.kernel", "img.initramfs", "img.iso",
		"img-boot.iso", "img-allowlist.txt", "img-checksum.txt", "img.d"} {
		if err := CheckEmittedName("img", name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"img", "img.", "img-", "other.kernel", "imgx.kernel", "img.a/b", "img...kernel",
		"img.x..y", "img.\x1b[2J", "img.a b", "img.k\n", "../img.kernel", "img." + string(make([]byte, 300))} {
		if err := CheckEmittedName("img", name); err == nil {
			t.Errorf("%q was taken", name)
		}
	}
}
