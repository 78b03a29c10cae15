package cli

import (
	"strings"
	"testing"
)

func TestDiskSize(t *testing.T) {
	for in, want := range map[string]int64{
		"40G": 40 << 30, "40GiB": 40 << 30, "40g": 40 << 30, "512M": 512 << 20, "1T": 1 << 40,
		"1.5G": 3 << 29, "2147483648": 2 << 30, "1048576K": 1 << 30,
	} {
		var d diskSize
		if err := d.Set(in); err != nil || int64(d) != want {
			t.Errorf("%q: %d, %v; want %d", in, int64(d), err, want)
		}
	}
	for in, want := range map[string]string{
		"": "want a size", "G": "want a size", "-1G": "want a size", "ten": "want a size",
		"100M": "less than the 512 MiB", "2000T": "more than a disk", "NaN": "want a size",
	} {
		var d diskSize
		if err := d.Set(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
}

func TestDefaultScratch(t *testing.T) {
	if got := defaultScratch(0); got != 20<<30 {
		t.Errorf("default %d", got)
	}
	if got := defaultScratch(30); got < 64e9 || got%(1<<20) != 0 {
		t.Errorf("for a 30 GB image: %d", got)
	}
}
