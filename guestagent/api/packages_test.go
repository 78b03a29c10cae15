package api

import (
	"slices"
	"testing"
)

// The list reads back as written, in order, less what the host would
// refuse; and the host refuses what the guest would not write.
func TestPackageList(t *testing.T) {
	pkgs := []Package{
		{"zlib1g", "1:1.2.13.dfsg-1", "amd64"},
		{"libstdc++6", "12.2.0-14+deb12u1", "amd64"},
		{"base-files", "12.4+deb12u8", "amd64"},
		{"kernel-core", "6.8.5-301.fc40", "x86_64"},
		{"vim", "2:9.1.0^20240101-1", "x86_64"},
		{"evil", "1.0\x1b[2J", "amd64"},
		{"", "1", "all"},
	}
	list, left := FormatPackages(pkgs)
	if left != 2 {
		t.Errorf("left out %d, want 2", left)
	}
	got, err := ParsePackages(list)
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{pkgs[2], pkgs[3], pkgs[1], pkgs[4], pkgs[0]}
	if !slices.Equal(got, want) {
		t.Errorf("read back %v, want %v", got, want)
	}
	for _, bad := range []string{
		"a\t1\n",                  // two fields
		"a\t1\tamd64",             // no newline
		"a\t1 2\tamd64\n",         // a space
		"-a\t1\tamd64\n",          // an option
		"a\t1\tamd64\t\n",         // four
		"a\t1\t$(reboot)\n",       // a shell's
		"a\t1\tamd64\n\nb\t1\t\n", // an empty line, then a short one
	} {
		if _, err := ParsePackages([]byte(bad)); err == nil {
			t.Errorf("ParsePackages(%q) took it", bad)
		}
	}
}
